"""report.html: the fused output as one self-contained page a person opens in a browser.

The page is a template shipped with the package (``assets/``): its data travels in one JSON
block and its own script draws it, so it needs no network and works from ``file://``. The
source media is linked from the player, never embedded.
"""

from video_extract.report.page import link_media, media_kind, media_link, page_data, render_report
from video_extract.report.rebuild import rebuild_report
from video_extract.report.thumbnails import scene_thumbnails

__all__ = ["link_media", "media_kind", "media_link", "page_data", "rebuild_report", "render_report", "scene_thumbnails"]
