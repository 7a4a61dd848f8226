"""YTCaption: the domain and adapters shared by the Lambdas and the Batch worker.

Importing this package is cheap on purpose: the API Lambda's cold start pays for
every module imported here, so heavy libraries (yt-dlp, PyAV, numpy,
faster-whisper) are only imported by the modules that need them.
"""

__version__ = "0.1.0"
