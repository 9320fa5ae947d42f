"""The reference point for every reducer: every tubelet is a token and goes through every block."""

from __future__ import annotations

from .base import Reducer


class Dense(Reducer):
    name = "none"
    title = "None (dense)"
    acts = "nothing is dropped"
    shows = "the dense reference every reducer is compared with"
    explanation = "Every tubelet of the clip becomes a token and every token goes through every block."
