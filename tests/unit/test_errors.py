"""core.errors: English sentences for the API and the command line, translated by the console."""

from __future__ import annotations

from core.errors import N_, BulkRefused, Forbidden, InputError, localized

PL = {
    "you may not set ticket #%(number)s to %(status)r": (
        "nie możesz ustawić zgłoszeniu #%(number)s statusu %(status)r"
    ),
    "the comment is empty": "komentarz jest pusty",
}


def gettext(message: str) -> str:
    return PL.get(message, message)


def test_the_sentence_is_english_and_its_template_translates_with_the_same_values() -> None:
    exc = Forbidden(N_("you may not set ticket #%(number)s to %(status)r"), number=7, status="Nowe")
    assert str(exc) == "you may not set ticket #7 to 'Nowe'"
    assert exc.status_code == 403
    assert localized(exc, gettext) == "nie możesz ustawić zgłoszeniu #7 statusu 'Nowe'"


def test_sentences_without_values_or_catalogue_entries_still_work() -> None:
    assert localized(InputError(N_("the comment is empty")), gettext) == "komentarz jest pusty"
    plain = InputError("a sentence built elsewhere: 50% done")  # no values: no % formatting
    assert str(plain) == "a sentence built elsewhere: 50% done"
    assert localized(plain, gettext) == "a sentence built elsewhere: 50% done"


def test_a_bulk_refusal_keeps_each_tickets_error() -> None:
    why = InputError(N_("the comment is empty"))
    exc = BulkRefused(N_("no ticket was changed: %(n)s"), {12: why}, n=1)
    assert str(exc) == "no ticket was changed: 1"
    assert exc.reasons == {12: "the comment is empty"}
    assert localized(exc.refusals[12], gettext) == "komentarz jest pusty"
