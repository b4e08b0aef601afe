"""Speech building blocks shared by the speech plugins: voice activity, Whisper, diarization, subtitles."""
