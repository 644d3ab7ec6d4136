"""Hostile inputs for the refusal tests: a loopback HTTP server that records every request it receives, a VRT
disguised as a band file, a sparse GeoTIFF that declares a huge size, a secret file whose bytes must never be
quoted back."""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rasterio

SECRET = "root:x:0:0:SECRET-CONTENT-7f3a"


@contextmanager
def loopback_server():
    """An HTTP server on 127.0.0.1 (random port) that answers 404 and records each path requested.

    Yields (base URL, list of requested paths)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def url_paths(base: str) -> list[str]:
    """Every way of naming a remote file that GDAL or rasterio would fetch."""
    return [f"{base}/scene.tif", f"/vsicurl/{base}/scene.tif", f"/vsicurl_streaming/{base}/scene.tif",
            f"zip+{base}/a.zip!/scene.tif", "s3://bucket/scene.tif", "/vsis3/bucket/scene.tif",
            "gs://bucket/scene.tif", "file:///etc/passwd", f"/vsitar//vsicurl/{base}/a.tar/scene.tif"]


def write_secret(path: Path) -> Path:
    path.write_text(SECRET + "\nmore secret lines\n")
    return path


def write_vrt_disguise(path: Path, target: Path) -> Path:
    """A file named like a raster (.jp2/.tif) that is VRT XML reading the pixels of `target`."""
    path.write_text(f'<VRTDataset rasterXSize="64" rasterYSize="64"><VRTRasterBand dataType="UInt16" band="1">'
                    f"<SimpleSource><SourceFilename>{target}</SourceFilename><SourceBand>1</SourceBand>"
                    "</SimpleSource></VRTRasterBand></VRTDataset>")
    return path


def write_sparse_huge(path: Path, count: int = 12, side: int = 200_000) -> Path:
    """A few-MB sparse tiled GeoTIFF that declares count x side x side uint16 pixels (~894 GiB decoded)."""
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=count, dtype="uint16",
                       tiled=True, compress="deflate", sparse_ok=True, BIGTIFF="YES", crs="EPSG:32632",
                       transform=rasterio.transform.from_origin(500000, 5000000, 10, 10)) as dst:
        dst.write(np.ones((count, 16, 16), np.uint16), window=rasterio.windows.Window(0, 0, 16, 16))
    return path
