"""Errors a user can cause and fix: the CLI prints them as one line, the app as st.error."""

from explorer.models.reducers import ParameterError
from explorer.models.weights import CheckpointError

from .video import VideoError

USER_ERRORS = (VideoError, CheckpointError, ParameterError)

__all__ = ["USER_ERRORS", "CheckpointError", "ParameterError", "VideoError"]
