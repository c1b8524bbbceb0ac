"""Campaign commands: create, send, pause/resume/cancel, status, the worker, SMTP accounts."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import click
from flask import Flask
from flask_babel import gettext as _
from flask_babel import ngettext

from campaign.commands import named

# Lines of the pre-send report `send` prints when the check blocks the launch.
MAX_PROBLEMS_SHOWN = 20
PROGRESS_EVERY = 250


def register(app: Flask) -> None:
    for command in (
        create_campaign_command,
        send_command,
        pause_command,
        resume_command,
        cancel_command,
        retry_command,
        status_command,
        worker_command,
        add_smtp_account_command,
    ):
        app.cli.add_command(command)


def _fail(message: str) -> NoReturn:
    """Stop with exit status 2: the command was asked for something that does not exist."""
    from campaign.extensions import db

    db.session.rollback()
    click.echo(_("Error: %(message)s", message=message), err=True)
    raise click.exceptions.Exit(2)


def _campaign(campaign_id: int) -> Any:
    from campaign.extensions import db
    from campaign.models import Campaign

    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        _fail(_("there is no campaign %(id)s", id=campaign_id))
    return campaign


def _audience_keys(
    list_names: tuple[str, ...], segment_names: tuple[str, ...], option: str
) -> list[str]:
    from campaign.services.contacts import lists, segments

    keys = []
    for name in list_names:
        found = lists.find_list(name)
        if found is None:
            _fail(_("%(option)s: there is no list called %(name)s", option=option, name=repr(name)))
        keys.append(f"list:{found.id}")
    for name in segment_names:
        segment = segments.find_segment(name)
        if segment is None:
            _fail(
                _("%(option)s: there is no segment called %(name)s", option=option, name=repr(name))
            )
        keys.append(f"segment:{segment.id}")
    return keys


@click.command("create-campaign")
@click.option("--statement", "statement_id", type=int, required=True, help="Statement to send.")
@click.option("--list", "list_names", multiple=True, help="Send to this list (repeatable).")
@click.option(
    "--segment", "segment_names", multiple=True, help="Send to this segment (repeatable)."
)
@click.option(
    "--exclude-list", "exclude_lists", multiple=True, help="Leave out this list's members."
)
@click.option(
    "--exclude-segment",
    "exclude_segments",
    multiple=True,
    help="Leave out this segment's contacts.",
)
@click.option("--smtp", "smtp_name", default=None, help="SMTP account (default: CAMPAIGN_MAIL_*).")
@click.option(
    "--from", "from_address", default="", help="From address (default: the default sender)."
)
@click.option("--reply-to", "reply_to", default="", help="Reply-To address.")
@click.option("--name", "name", default="", help="Campaign name (default: the statement's title).")
@click.option(
    "--no-unsubscribe",
    is_flag=True,
    help="No List-Unsubscribe headers (for one-to-one letters to officials).",
)
@click.option(
    "--attach-pdf/--no-attach-pdf",
    default=None,
    help="Attach the letter as a PDF (default: the statement's own setting).",
)
def create_campaign_command(
    statement_id: int,
    list_names: tuple[str, ...],
    segment_names: tuple[str, ...],
    exclude_lists: tuple[str, ...],
    exclude_segments: tuple[str, ...],
    smtp_name: str | None,
    from_address: str,
    reply_to: str,
    name: str,
    no_unsubscribe: bool,
    attach_pdf: bool | None,
) -> None:
    """Save a draft campaign; print "created campaign ID" (the id is the last number).

    Nothing is sent: `campaign send ID` launches it. Exits 2, storing nothing, when the
    statement, a list, a segment or the SMTP account does not exist, or a field is wrong.
    """
    from campaign.extensions import db
    from campaign.models import Statement
    from campaign.services.sending import campaigns
    from campaign.services.sending.smtp_accounts import find_account

    statement = db.session.get(Statement, statement_id)
    if statement is None:
        _fail(_("%(option)s: there is no statement %(id)s", option="--statement", id=statement_id))
    if not list_names and not segment_names:
        _fail(_("name the recipients with --list NAME or --segment NAME (repeatable)"))
    include = _audience_keys(list_names, segment_names, "--list/--segment")
    exclude = _audience_keys(exclude_lists, exclude_segments, "--exclude-list/--exclude-segment")
    account = None
    if smtp_name is not None:
        account = find_account(smtp_name)
        if account is None:
            _fail(_("--smtp: there is no SMTP account called %(name)s", name=repr(smtp_name)))
    try:
        campaign = campaigns.create_campaign(
            statement,
            name=name,
            audience=campaigns.AudienceSpec(tuple(include), tuple(exclude)),
            from_address=from_address,
            reply_to=reply_to,
            smtp_account=account,
            is_pdf_attached=attach_pdf,
            has_list_unsubscribe=not no_unsubscribe,
        )
    except campaigns.CampaignError as error:
        _fail(str(error))
    check = campaigns.check_campaign(campaign)
    db.session.commit()
    for warning in check.warnings:
        click.echo(_("warning: %(message)s", message=warning), err=True)
    click.echo(
        ngettext(
            "%(num)d recipient (%(suppressed)d suppressed)",
            "%(num)d recipients (%(suppressed)d suppressed)",
            check.count.sendable,
            suppressed=check.count.suppressed,
        ),
        err=True,
    )
    # The id stays the last number in every language: scripts take it from there.
    click.echo(_("created campaign %(id)s", id=campaign.id))


def _with_progress(query: Any, total: int) -> Iterator[Any]:
    from campaign.extensions import db
    from campaign.models import Contact

    done = 0
    checking = _("checking letters: %(done)d/%(total)d", done=0, total=total)
    for contact in db.session.scalars(query.order_by(Contact.id).execution_options(yield_per=500)):
        yield contact
        done += 1
        if done % PROGRESS_EVERY == 0:
            checking = _("checking letters: %(done)d/%(total)d", done=done, total=total)
            click.echo(f"\r{checking}", err=True, nl=False)
    checking = _("checking letters: %(done)d/%(total)d", done=done, total=total)
    click.echo(f"\r{checking}", err=True)


@click.command("send")
@click.argument("campaign_id", type=int)
@click.option(
    "--override",
    is_flag=True,
    help="Launch although the pre-send check found letters with errors (needs --reason).",
)
@click.option(
    "--reason",
    default="",
    metavar="TEXT",
    help="Why the campaign is launched despite the errors (recorded in the audit log).",
)
@click.option(
    "--yes",
    "assume_yes",
    is_flag=True,
    help="Do not ask for a confirmation at a terminal (scripts never are asked).",
)
def send_command(campaign_id: int, override: bool, reason: str, assume_yes: bool) -> None:
    """Check every letter, then launch CAMPAIGN_ID: queue its sending and return at once.

    The summary (recipients, SMTP account, pace, expected duration, languages) is printed
    first; at a terminal, the launch waits for a "y" unless --yes is given. Workers
    (`campaign worker`) do the sending; `campaign status ID` shows where it stands.
    Launching a campaign twice does nothing the second time (exit 0). Exits 2 when the
    campaign cannot be launched (the reason is printed), 1 when the confirmation is refused.
    --override launches despite letters with errors, as the page's override does: only with
    a --reason, which the audit log keeps.
    """

    from campaign.extensions import db
    from campaign.models import CampaignStatus
    from campaign.services.sending import campaigns, presend_runs
    from campaign.services.statements import presend

    if override and not reason.strip():
        # Refused before anything is checked: the audit log keeps why, as for the page's.
        _fail(
            _("--override needs --reason TEXT: say why the campaign is launched despite the errors")
        )
    if reason.strip() and not override:
        _fail(_("--reason is read only with --override"))
    campaign = _campaign(campaign_id)
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        click.echo(
            _(
                "campaign %(id)s already launched (%(status)s)",
                id=campaign.id,
                status=named(campaign.status, "campaign_status", in_sentence=True),
            )
        )
        return
    check = campaigns.check_campaign(campaign)
    if check.errors:
        refusal = _(
            "campaign %(id)s cannot be launched: %(reasons)s",
            id=campaign.id,
            reasons="; ".join(check.errors),
        )
        if check.address_errors:
            # A second terminal beside `scripts/run` without its CAMPAIGN_DEBUG (README).
            refusal += "\n" + _(
                "`campaign dev` shows these as warnings, so that the demo can send to its own "
                "mailbox. If this terminal works on the development instance beside "
                "`scripts/run`, run `export CAMPAIGN_DEBUG=true` in it first; a real "
                "installation needs a sender at its own domain and CAMPAIGN_PUBLIC_URL set to "
                "its https:// address."
            )
        _fail(refusal)
    # Read here with its progress line and stored: the launch below reuses it (decision 0071).
    recipients = campaigns.recipients_query(campaign)
    report = presend_runs.current_report(campaign, recipients) or presend_runs.run_here(
        campaign, recipients, contacts=_with_progress(recipients, check.count.sendable)
    )
    click.echo(report.summary(), err=True)
    if report.has_errors:
        # The text's errors first, then the recipients'; the whole list is `campaign check`.
        errors = presend.problem_lines(report, errors_only=True)
        for line in errors[:MAX_PROBLEMS_SHOWN]:
            click.echo(str(line), err=True)
        if len(errors) > MAX_PROBLEMS_SHOWN:
            click.echo(_("… and %(num)d more", num=len(errors) - MAX_PROBLEMS_SHOWN), err=True)
    _print_launch_summary(campaign, check.count.sendable, report)
    asked = not assume_yes and sys.stdin.isatty()
    if asked and not click.confirm(_("Launch now?"), default=False, err=True):
        db.session.rollback()
        click.echo(_("campaign %(id)s not launched", id=campaign_id), err=True)
        raise click.exceptions.Exit(1)
    from campaign.services.sending.launch import launch_now

    try:
        launched = launch_now(campaign, override=override, override_reason=reason)
    except campaigns.CampaignError as error:
        _fail(str(error))
    if launched is None:  # another launch got there between our look and the lock
        db.session.rollback()
        click.echo(_("campaign %(id)s already launched", id=campaign_id))
        return
    db.session.commit()
    if launched.id != campaign_id:
        # A yearly campaign: its next copy went now, in place of that date's.
        click.echo(
            _(
                "campaign %(id)s is sent every year: its copy %(name)s goes now, in place of "
                "that date's; the rule goes on the following year",
                id=campaign_id,
                name=repr(launched.name),
            ),
            err=True,
        )
        campaign_id = launched.id
    counts = campaigns.status_counts(campaign_id)
    if report.has_errors:
        click.echo(
            ngettext(
                "warning: launched with letters with errors for %(num)d contact "
                "(--override, recorded in the audit log)",
                "warning: launched with letters with errors for %(num)d contacts "
                "(--override, recorded in the audit log)",
                report.contacts_with_errors,
            ),
            err=True,
        )
    click.echo(
        _(
            "campaign %(id)s launched: %(queued)d recipients queued, %(suppressed)d suppressed",
            id=campaign_id,
            queued=counts["queued"],
            suppressed=counts["suppressed"],
        )
    )


def _print_launch_summary(campaign: Any, count: int, report: Any) -> None:
    """What the page's confirmation names, on stderr: account, pace, duration, languages."""
    from campaign.scheduling.summary import campaign_schedule_text
    from campaign.services.sending import launch as launch_confirmation

    planned = campaign_schedule_text(campaign)
    if planned:
        click.echo(planned, err=True)
    pace = launch_confirmation.expected_pace(campaign.smtp_account, count)
    account = campaign.smtp_account.name if campaign.smtp_account else _("server settings")
    click.echo(
        ngettext("%(num)d recipient", "%(num)d recipients", count)
        + " · "
        + _("SMTP account: %(name)s", name=account)
        + " · "
        + _("pace: %(pace)s", pace=pace.limits_text())
        + " · "
        + _("expected duration: %(duration)s", duration=pace.duration_text()),
        err=True,
    )
    lines = launch_confirmation.language_lines(launch_confirmation.language_split(report))
    if lines:
        click.echo(_("languages: %(split)s", split=", ".join(lines)), err=True)


def _change(campaign_id: int, action: str) -> None:
    from campaign.extensions import db
    from campaign.services.sending import campaigns

    campaign = _campaign(campaign_id)
    # One whole sentence per action: translations need the verb, not a word to splice in.
    change = {
        "pause": (
            campaigns.pause_campaign,
            _("campaign %(id)s paused", id=campaign_id),
            _("campaign %(id)s is %(status)s; nothing to pause"),
        ),
        "resume": (
            campaigns.resume_campaign,
            _("campaign %(id)s resumed: sending again", id=campaign_id),
            _("campaign %(id)s is %(status)s; nothing to resume"),
        ),
        "cancel": (
            campaigns.cancel_campaign,
            _("campaign %(id)s cancelled", id=campaign_id),
            _("campaign %(id)s is %(status)s; nothing to cancel"),
        ),
    }
    function, done, unchanged = change[action]
    before = named(campaign.status, "campaign_status", in_sentence=True)
    if not function(campaign):
        db.session.rollback()
        if action == "resume":
            from campaign.services.backups.hold import SENDING_HELD, sending_is_held

            if sending_is_held():  # the service refuses while a restore hold stands: say why
                raise click.ClickException(_("not resumed: %(reason)s", reason=SENDING_HELD))
        click.echo(unchanged % {"id": campaign_id, "status": before})
        return
    db.session.commit()
    click.echo(done)


@click.command("pause")
@click.argument("campaign_id", type=int)
def pause_command(campaign_id: int) -> None:
    """Stop sending CAMPAIGN_ID after the messages in flight (resume carries on)."""
    _change(campaign_id, "pause")


@click.command("resume")
@click.argument("campaign_id", type=int)
def resume_command(campaign_id: int) -> None:
    """Carry on sending a paused CAMPAIGN_ID."""
    _change(campaign_id, "resume")


@click.command("cancel")
@click.argument("campaign_id", type=int)
def cancel_command(campaign_id: int) -> None:
    """Stop CAMPAIGN_ID for good: recipients not yet written to are marked cancelled."""
    _change(campaign_id, "cancel")


@click.command("retry")
@click.argument("campaign_id", type=int)
def retry_command(campaign_id: int) -> None:
    """Try CAMPAIGN_ID's deferred and in-doubt letters again now, not at their next attempt.

    In-doubt letters keep their Message-ID and stay counted as possible duplicates. The
    campaign must be sending (resume a paused one first).
    """
    from campaign.extensions import db
    from campaign.services.sending import campaigns

    campaign = _campaign(campaign_id)
    try:
        count = campaigns.retry_now(campaign)
    except campaigns.CampaignError as error:
        _fail(str(error.message))
    db.session.commit()
    click.echo(
        ngettext(
            "campaign %(id)s: %(num)d deferred or in-doubt letter queued to be tried again now",
            "campaign %(id)s: %(num)d deferred or in-doubt letters queued to be tried again now",
            count,
            id=campaign_id,
        )
    )


@click.command("status")
@click.argument("campaign_id", type=int)
def status_command(campaign_id: int) -> None:
    """Print "campaign ID STATUS", then "<delivery status> <count>" for every status.

    Every status is printed, zeros included, so scripts can grep for `sent 300`. The counts
    are the letter's (follow-ups apart), as on the campaign page, its dashboard and the CSV
    (decision 0046). Why a campaign is paused or cancelled goes to stderr.
    """
    from campaign.services.sending import ledger

    campaign = _campaign(campaign_id)
    status_line = _(
        "campaign %(id)s %(status)s",
        id=campaign.id,
        status=named(campaign.status, "campaign_status", in_sentence=True),
    )
    click.echo(status_line)
    for status, count in ledger.campaign_figures(campaign.id).counts.items():
        click.echo(f"{named(status, 'delivery_status')} {count}")
    if campaign.status_reason:
        from campaign.scheduling import stored_text

        reason = stored_text.read(campaign.status_reason)
        click.echo(_("reason: %(reason)s", reason=reason), err=True)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option("--simple", is_flag=True, help="Run jobs in the worker process (for a debugger).")
@click.option("--name", default=None, help="Worker name shown by `rq info`.")
def worker_command(burst: bool, simple: bool, name: str | None) -> None:
    """Run an RQ worker on this installation's queue (any number, on any machines)."""
    # The worker is its own program (python -m workers): campaign/ never imports workers/.
    argv = [sys.executable, "-m", "workers"]
    if burst:
        argv.append("--burst")
    if simple:
        argv.append("--simple")
    if name:
        argv += ["--name", name]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # noqa: S606  (a fixed argv: this interpreter, -m workers)


@click.command("add-smtp-account")
@click.argument("name")
@click.option("--host", required=True, help="SMTP server host name.")
@click.option("--port", type=int, default=587, show_default=True)
@click.option(
    "--security",
    type=click.Choice(["none", "starttls", "ssl"]),
    default="starttls",
    show_default=True,
)
@click.option("--user", "username", default="", help="User name for AUTH.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (never from the command line).",
)
@click.option("--per-second", type=int, default=0, help="Messages per second (0: no limit).")
@click.option("--per-minute", type=int, default=0, help="Messages per minute (0: no limit).")
@click.option("--per-day", type=int, default=0, help="Messages per day (0: no limit).")
@click.option("--max-connections", type=int, default=0, help="Connections at once (0: no limit).")
def add_smtp_account_command(
    name: str,
    host: str,
    port: int,
    security: str,
    username: str,
    password_stdin: bool,
    per_second: int,
    per_minute: int,
    per_day: int,
    max_connections: int,
) -> None:
    """Add SMTP account NAME; its password, if any, is read from stdin and stored encrypted."""
    from campaign.extensions import db
    from campaign.services.sending import smtp_accounts

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            _fail(_("--password-stdin: standard input held no password"))
    try:
        account = smtp_accounts.create_account(
            smtp_accounts.AccountFields(
                name=name,
                host=host,
                port=port,
                security=security,
                username=username,
                password=password,
                per_second=per_second,
                per_minute=per_minute,
                per_day=per_day,
                max_connections=max_connections,
            )
        )
    except smtp_accounts.SmtpAccountError as error:
        _fail(str(error))
    db.session.commit()
    click.echo(_("added SMTP account %(name)s (%(id)s)", name=account.name, id=account.id))
