from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from schemas.events import Usage
from schemas.pricing import Price, PriceBook, build_price_book, load_catalog


def _ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


def test_cost_is_exact_decimal_with_cached_rate() -> None:
    price = Price("m", input=Decimal("2.50"), output=Decimal("10"), cached_input=Decimal("1.25"))
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=200)
    # 800 * 2.50 + 200 * 1.25 + 500 * 10 = 7250 per 1M tokens
    assert price.cost(usage) == Decimal("0.00725")


def test_cached_tokens_fall_back_to_the_input_rate() -> None:
    price = Price("m", input=Decimal("3"), output=Decimal("0"))
    assert price.cost(Usage(prompt_tokens=10, cached_tokens=10)) == Decimal("0.00003")


def test_exact_beats_pattern_and_longest_pattern_wins() -> None:
    book = PriceBook(
        [
            Price("gpt-4o*", Decimal(1), Decimal(1)),
            Price("gpt-4o-mini*", Decimal(2), Decimal(2)),
            Price("gpt-4o-mini", Decimal(3), Decimal(3)),
        ]
    )
    now = _ms("2026-01-01")
    assert book.lookup("gpt-4o-mini", now).input == 3  # type: ignore[union-attr]
    assert book.lookup("gpt-4o-mini-2024-07-18", now).input == 3  # type: ignore[union-attr]
    assert book.lookup("gpt-4o-mini-tts", now).input == 2  # type: ignore[union-attr]
    assert book.lookup("gpt-4o-audio", now).input == 1  # type: ignore[union-attr]
    assert book.lookup("llama3", now) is None


def test_effective_dates_never_rewrite_history() -> None:
    book = PriceBook(
        [
            Price("m", Decimal(1), Decimal(1), effective_from=date(2025, 1, 1)),
            Price("m", Decimal(2), Decimal(2), effective_from=date(2026, 1, 1)),
        ]
    )
    assert book.lookup("m", _ms("2025-06-30")).input == 1  # type: ignore[union-attr]
    assert book.lookup("m", _ms("2026-01-01")).input == 2  # type: ignore[union-attr]
    assert book.lookup("m", _ms("2024-12-31")) is None


def test_config_overrides_the_catalog() -> None:
    catalog = {p.model for p in load_catalog()}
    assert {"gpt-4o", "gpt-4.1", "gpt-4o-mini*"} <= catalog
    override = Price("gpt-4o", Decimal(9), Decimal(9), effective_from=date(2024, 10, 1))
    book = build_price_book([override])
    assert book.lookup("gpt-4o", _ms("2026-01-01")).input == 9  # type: ignore[union-attr]


def test_audio_and_image_parts_cost_their_own_rates() -> None:
    price = Price(
        "gpt-4o-audio",
        input=Decimal("2.50"),
        output=Decimal("10"),
        audio_input=Decimal("40"),
        audio_output=Decimal("80"),
        image_input=Decimal("5"),
    )
    usage = Usage.from_openai(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 300,
            "prompt_tokens_details": {"audio_tokens": 400, "image_tokens": 100},
            "completion_tokens_details": {"audio_tokens": 200},
        }
    )
    assert (usage.audio_prompt_tokens, usage.image_prompt_tokens) == (400, 100)
    # text 500 x 2.50 + audio 400 x 40 + image 100 x 5 + text 100 x 10 + audio 200 x 80
    assert price.cost(usage) == Decimal("0.03475")
    # without published audio/image rates every token costs the text rate
    flat = Price("m", input=Decimal("2.50"), output=Decimal("10"))
    assert flat.cost(usage) == Decimal("0.0055")


def test_parts_never_count_more_than_the_totals() -> None:
    """A provider reporting details above the total is not billed for phantom tokens."""
    price = Price("m", input=Decimal(1), output=Decimal(1), audio_input=Decimal(100))
    usage = Usage(prompt_tokens=10, cached_tokens=8, audio_prompt_tokens=50)
    assert price.cost(usage) == Decimal(8 + 2 * 100) / 1_000_000


def test_a_deployment_price_applies_only_to_what_that_deployment_served() -> None:
    negotiated = Price("gpt-4o*", Decimal("1.00"), Decimal("4.00"), deployment="azure-eu/gpt-4o")
    book = build_price_book([negotiated])
    now = _ms("2026-06-01")
    there = book.lookup("gpt-4o", now, "azure-eu/gpt-4o")
    elsewhere = book.lookup("gpt-4o", now, "openai/gpt-4o")
    assert there is not None and there.input == Decimal("1.00")
    assert there.ref == "gpt-4o*[azure-eu/gpt-4o]@1970-01-01"
    assert elsewhere is not None and elsewhere.input == Decimal("2.50")  # the list price
    assert book.lookup("gpt-4o", now) == elsewhere
    assert book.lookup("claude-sonnet-4-5", now, "azure-eu/gpt-4o") != there  # model must match
