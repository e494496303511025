"""The checks of count and weight settings, so that every refusal names its option the same way."""

from typing import Any


def check_count(
    value: Any, option: str, minimum: int = 1, why: str = "", maximum: int | None = None
) -> None:
    """Refuse anything but an integer in [``minimum``, ``maximum``] (a bool is not a count) for
    ``option``; ``maximum`` None means no upper bound.

    ``why`` is added to the message when the bounds need a reason.
    """
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        reason = f" {why}" if why else ""
        raise ValueError(
            f"{option.rsplit('.', 1)[-1]} must be an integer {bounds}, got {value!r}: "
            f"set {option}.{reason}"
        )


def check_fraction_or_count(
    value: Any,
    option: str,
    counted: str,
    whole: bool = False,
    error: type[ValueError] = ValueError,
) -> None:
    """Refuse anything but a fraction in (0, 1) (or (0, 1] when ``whole``) or an integer
    number of ``counted`` >= 1 for ``option``, raising ``error``."""
    fraction = isinstance(value, float) and (0 < value < 1 or (whole and value == 1))
    if fraction:
        return
    try:
        check_count(value, option)
    except ValueError:
        interval = "(0, 1]" if whole else "(0, 1)"
        raise error(
            f"{option.rsplit('.', 1)[-1]} must be a fraction in {interval} or a number of "
            f"{counted} >= 1, got {value!r}: set {option}"
        ) from None


def check_non_negative(value: Any, option: str, what: str = "") -> None:
    """Refuse anything but a number >= 0 for ``option`` (a weight, a noise level); ``what``
    says in the message what the value is."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        name = option.rsplit(".", 1)[-1]
        described = f"{name} ({what})" if what else name
        raise ValueError(f"{described} must be >= 0, got {value!r}: set {option}")
