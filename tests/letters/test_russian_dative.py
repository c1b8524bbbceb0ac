"""Russian addressees in the dative: declined with confidence, or kept as written."""

from __future__ import annotations

import pytest

from campaign.letters.russian_dative import (
    suggest_name,
    suggest_position_title,
)


@pytest.mark.parametrize(
    ("title", "dative"),
    [
        (
            "Посол Кыргызской Республики во Французской Республике",
            "Послу Кыргызской Республики во Французской Республике",
        ),
        (
            "Чрезвычайный и Полномочный Посол Республики Казахстан",
            "Чрезвычайному и Полномочному Послу Республики Казахстан",
        ),
        (
            "Специальный докладчик ООН по вопросу о пытках",
            "Специальному докладчику ООН по вопросу о пытках",
        ),
        ("Министр иностранных дел", "Министру иностранных дел"),
        ("Председатель Европейского совета", "Председателю Европейского совета"),
        ("Глава делегации ЕС", "Главе делегации ЕС"),
        # Adjectives that also read as nouns qualify the head ("Старший", "Учёный").
        ("Старший научный сотрудник", "Старшему научному сотруднику"),
        ("Учёный секретарь Совета", "Учёному секретарю Совета"),
        # Two titles joined right after a head noun are both declined.
        (
            "Посол, Постоянный представитель Республики Узбекистан при Отделении ООН в Женеве",
            "Послу, Постоянному представителю Республики Узбекистан при Отделении ООН в Женеве",
        ),
        ("Посол и Постоянный представитель", "Послу и Постоянному представителю"),
        ("Председатель, член Комитета", "Председателю, члену Комитета"),
    ],
)
def test_the_head_of_a_title_is_put_in_the_dative(title: str, dative: str) -> None:
    assert suggest_position_title(title) == dative


@pytest.mark.parametrize(
    "title", ["Ambassador of Uzbekistan to France", "по вопросу о пытках", "ООН", ""]
)
def test_a_title_morphology_cannot_decline_gives_no_suggestion(title: str) -> None:
    # The address then prints it as written and the pre-send check flags it.
    assert suggest_position_title(title) == ""


@pytest.mark.parametrize(
    ("given", "family", "patronymic", "gender", "dative"),
    [
        ("Дильноза", "Намунова", "", "f", "Д.\u00a0Намуновой"),
        ("Айда", "Бекова", "Бахтиёровна", "f", "А.Б.\u00a0Бековой"),
        ("Берди", "Мисалов", "", "m", "Б.\u00a0Мисалову"),
        ("Анна", "Шмидт", "", "f", "А.\u00a0Шмидт"),  # a woman's foreign surname does not decline
        ("Иван", "Шмидт", "", "m", "И.\u00a0Шмидту"),
        ("Мария", "Кюри-Склодовская", "", "f", "М.\u00a0Кюри-Склодовской"),
    ],
)
def test_family_names_decline_by_gender(
    given: str, family: str, patronymic: str, gender: str, dative: str
) -> None:
    assert suggest_name(given, family, patronymic, gender) == dative


@pytest.mark.parametrize(
    ("given", "family", "patronymic", "gender", "dative"),
    [
        ("Касым-Жомарт", "Токаев", "", "m", "К.-Ж.\u00a0Токаеву"),
        ("Мурат", "Токтогулов", "Кайратович", "m", "М.К.\u00a0Токтогулову"),
        ("Ольга", "Тестова", "Ивановна", "f", "О.И.\u00a0Тестовой"),
        ("Иван", "Достоевский", "", "m", "И.\u00a0Достоевскому"),
        # A hyphenated given name keeps both initials.
        ("Касым-Жомарт", "Токаев", "Кемелевич", "m", "К.-Ж.К.\u00a0Токаеву"),
    ],
)
def test_surnames_the_dictionary_lacks_decline_by_their_regular_endings(
    given: str, family: str, patronymic: str, gender: str, dative: str
) -> None:
    assert suggest_name(given, family, patronymic, gender) == dative


def test_no_gender_or_no_cyrillic_means_no_suggestion() -> None:
    assert suggest_name("Дильноза", "Намунова", "", "unknown") == ""
    assert suggest_name("Dilnoza", "Namunova", "", "f") == ""
