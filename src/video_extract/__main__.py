import sys

from video_extract.cli import main

sys.exit(main())
