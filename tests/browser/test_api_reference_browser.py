"""The API's reference page in Chromium: it opens without any third-party asset, and every
operation of the OpenAPI document is listed, its link leading to its section."""

from __future__ import annotations

from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import LiveServer


def test_the_reference_page_lists_every_operation_of_the_contract(
    page: Page, live_server: LiveServer
) -> None:
    asked: list[Request] = []
    page.on("request", lambda request: asked.append(request))
    console_errors: list[str] = []
    page.on(
        "console", lambda message: message.type == "error" and console_errors.append(message.text)
    )

    document = page.request.get(f"{live_server.url}/api/v1/openapi.json").json()
    page.goto("/api/v1/docs")
    expect(page.locator("h1")).to_contain_text("API reference")

    listed = page.locator(".api-index li code").all_inner_texts()
    expected = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert sorted(listed) == sorted(expected)
    assert "GET /api/v1/me" in listed

    page.locator(".api-index a", has_text="GET /api/v1/me").click()
    section = page.locator(".api-operation:target")
    expect(section).to_contain_text("GET /api/v1/me")
    expect(section).to_contain_text("KeyInfo")

    # Nothing from another origin: no CDN, no third-party script or font.
    assert all(r.url.startswith(live_server.url) for r in asked), [r.url for r in asked]
    assert console_errors == []
