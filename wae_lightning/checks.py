"""The one check of a count setting, so that every refusal names its option the same way."""

from typing import Any


def check_count(value: Any, option: str, minimum: int = 1, why: str = "") -> None:
    """Refuse anything but an integer >= ``minimum`` (a bool is not a count) for ``option``.

    ``why`` is added to the message when the minimum needs a reason.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        reason = f" {why}" if why else ""
        raise ValueError(
            f"{option.rsplit('.', 1)[-1]} must be an integer >= {minimum}, got {value!r}: "
            f"set {option}.{reason}"
        )
