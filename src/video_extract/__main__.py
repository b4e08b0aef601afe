from video_extract.cli import entry

entry()
