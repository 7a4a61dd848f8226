"""Media handling: download (yt-dlp), decode and normalize (PyAV), chunk planning (Silero VAD)."""
