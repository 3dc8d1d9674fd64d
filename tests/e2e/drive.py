"""Drive the Streamlit app in Chromium, as a user would; run by ``tests/e2e/test_browser.py``.

    python tests/e2e/drive.py --out artifacts/e2e

Meant to run inside a private network namespace whose loopback has an extra address (see
``test_browser.py``): WebRTC's ICE (aioice) skips 127.0.0.1, so without 127.0.0.2 no frame reaches
the server. The script

1. writes a camera clip (``.y4m``: 640x480 frames of real faces from :mod:`fer_core.inference.scenes`) for
   Chromium's fake camera;
2. starts ``streamlit run app.py`` headless on 127.0.0.1 (a free port);
3. opens "/" in Chromium (Playwright, the system's ``chromium``) and visits every page through the
   sidebar links, failing a page that shows a Streamlit exception;
4. on the Photo page uploads a real photo through the file chooser and waits for the annotated image
   and the faces' labels;
5. on the Webcam page clicks START in the component's iframe and waits until the page's live readouts
   show emotion labels for the camera's faces;
6. writes screenshots and ``verdict.json`` (what was checked and seen) into ``--out``.

It exits 0 when it could run (the test asserts on the verdict) and stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# Flags measured to work here (../shared/NOTES.md): no GPU, no sandbox (root), no background traffic,
# a fake camera fed from a file and auto-accepted permission prompts, WebRTC over loopback.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                  "--allow-loopback-in-peer-connection"]
PAGE_TIMEOUT_MS = 60_000


def write_y4m(path: Path, frames, fps: int) -> None:
    """Write RGB frames as a YUV4MPEG2 clip (4:2:0, what Chromium's fake camera reads)."""
    import cv2

    h, w = frames[0].shape[:2]
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for f in frames:
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420).tobytes())  # Y plane, then U, then V


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer {url}/_stcore/health within {timeout:.0f} s")


def wait_idle(page, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """Wait until the page's script run has finished and its images have loaded."""
    page.wait_for_timeout(500)  # let a run that was just triggered start
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'"
        " && [...document.images].every(i => i.complete)", timeout=timeout_ms)
    page.wait_for_timeout(300)


def nav_link(page, name: str):
    """The sidebar link of a page, by its title."""
    return page.locator(f"a[data-testid='stSidebarNavLink']:has(span[label='{name}'])").first


def exceptions(page) -> list[str]:
    return [e.inner_text()[:500] for e in page.locator("[data-testid='stException']").all()]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "home"


def check_direct_url(page, base: str, out: Path, path: str = "/privacy") -> dict:
    """Open a page's URL as the server's very first request (Streamlit then runs the page file alone unless it hands
    over to app.py: ``fer_core.app.support.through_app``); the app's navigation and model picker must show."""
    page.goto(base + path)
    wait_idle(page)
    titles = [s.get_attribute("label") for s in page.locator("a[data-testid='stSidebarNavLink'] span[label]").all()]
    h1 = page.locator("h1").first
    page.screenshot(path=str(out / "direct-url.png"), full_page=True)
    return {"path": path, "nav": titles, "heading": h1.inner_text().strip() if h1.count() else "",
            "picker": page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").count() > 0,
            "exceptions": exceptions(page)}


def check_pages(page, base: str, out: Path) -> dict:
    """Open "/" and every page through the sidebar; ``{page title: {"ok", "exceptions", "heading"}}``."""
    pages = {}
    page.goto(base + "/")
    wait_idle(page)
    names = [s.get_attribute("label") for s in page.locator("a[data-testid='stSidebarNavLink'] span[label]").all()]
    for name in names:
        nav_link(page, name).click()
        wait_idle(page)
        h1 = page.locator("h1").first
        heading = h1.inner_text().strip() if h1.count() else ""
        errs = exceptions(page)
        page.screenshot(path=str(out / f"page-{slug(name)}.png"), full_page=True)
        pages[name] = {"ok": not errs and bool(heading), "exceptions": errs, "heading": heading, "url": page.url}
    return pages


def check_photo(page, out: Path, classes: list[str]) -> dict:
    """Upload a real photo (three faces) through the file chooser; look for the annotated image and labels."""
    import cv2

    from fer_core.inference.scenes import face_scene

    photo = out / "upload-group.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(face_scene(3, 0), cv2.COLOR_RGB2BGR))
    nav_link(page, "Photo").click()
    wait_idle(page)
    with page.expect_file_chooser() as fc:
        page.locator("[data-testid='stFileUploaderDropzone'] button").first.click()
    fc.value.set_files(str(photo))
    page.locator("h3", has_text=photo.name).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_idle(page)
    # the per-face table (glide data grid) keeps an accessible copy of its cells; column 1 is the label
    cells = page.evaluate("() => [...document.querySelectorAll('[data-testid^=\"glide-cell-1-\"]')]"
                          ".map(e => e.textContent)")
    labels = [c for c in cells if c in classes]
    images = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).map(i => [i.naturalWidth, i.naturalHeight])")
    message = " ".join(page.locator("[data-testid='stAlert']").all_inner_texts())
    page.screenshot(path=str(out / "photo-upload.png"), full_page=True)
    errs = exceptions(page)
    return {"ok": len(labels) == 3 and [640, 480] in images and not errs, "labels": labels, "images": images,
            "message": message[:300], "exceptions": errs}


def check_webcam(page, out: Path, classes: list[str], timeout_s: float) -> dict:
    """Click START on the Webcam page and wait for labels from the live readouts."""
    page.set_viewport_size({"width": 1280, "height": 1800})  # Streamlit scrolls inside the page: make room
    nav_link(page, "Webcam").click()
    wait_idle(page)
    frame = page.frame_locator("iframe[title*='webrtc'], iframe").first
    frame.get_by_role("button", name="START").click()
    readouts = page.locator(".st-key-live_readouts")
    pattern = re.compile(rf"#\d+ ({'|'.join(map(re.escape, classes))}) \d+%")
    t0 = time.monotonic()
    labels: list[str] = []
    text = ""
    while time.monotonic() - t0 < timeout_s:
        text = " ".join(readouts.all_inner_texts())
        labels = [m.group(1) for m in pattern.finditer(text)]
        if len(labels) >= 3:
            break
        page.wait_for_timeout(500)
    first_labels_s = round(time.monotonic() - t0, 1)
    if labels:  # let a few results and the chart come in, and the returned video play, before the picture
        try:
            page.wait_for_selector(".js-plotly-plot", timeout=15_000)
        except Exception:  # noqa: BLE001 - the chart is a nicety; the verdict records whether it came
            pass
        page.wait_for_timeout(4000)
        text = " ".join(readouts.all_inner_texts())
        labels = [m.group(1) for m in pattern.finditer(text)]
    video = page.frame_locator("iframe").first.locator("video").first
    try:
        playing = video.evaluate("v => v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0")
        size = video.evaluate("v => [v.videoWidth, v.videoHeight]")
    except Exception:  # noqa: BLE001
        playing, size = False, None
    fps = re.search(r"Frames per second\s*([\d.]+)", text)
    chart = page.locator(".js-plotly-plot").count()
    page.screenshot(path=str(out / "webcam.png"), full_page=True)
    try:
        frame.get_by_role("button", name="STOP").click(timeout=5000)
    except Exception:  # noqa: BLE001
        pass
    return {"ok": len(labels) >= 1 and not exceptions(page), "labels": labels, "seconds_to_labels": first_labels_s,
            "readouts": text[:500], "fps": float(fps.group(1)) if fps else None, "video_playing": playing,
            "video_size": size, "chart": chart, "exceptions": exceptions(page)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "artifacts" / "e2e"), help="screenshots and verdict.json")
    p.add_argument("--webcam-timeout", type=float, default=75.0, help="seconds to wait for live labels")
    p.add_argument("--fps", type=int, default=15, help="frame rate of the fake camera")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    verdict: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="fer-e2e-"))
    server = None
    try:
        from playwright.sync_api import sync_playwright

        from fer_core.inference.scenes import face_clip
        from fer_core.models.checkpoint import read_card

        classes = read_card("fer2013_resnet")["classes"]
        clip = tmp / "camera.y4m"
        write_y4m(clip, face_clip(3, 90), a.fps)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
        log = open(out / "streamlit.log", "w")  # noqa: SIM115 - closed in finally
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--server.runOnSave", "false"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_healthy(base, server, 60)
        verdict["server_start_s"] = round(time.monotonic() - t0, 1)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            raise RuntimeError("Chromium is not installed: apt-get install -y chromium")
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(tmp / "profile"), executable_path=chromium, headless=True,
                viewport={"width": 1280, "height": 900},
                args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={clip}"])
            try:
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                verdict["direct_url"] = check_direct_url(page, base, out)  # first request: before any other
                verdict["pages"] = check_pages(page, base, out)
                verdict["photo"] = check_photo(page, out, classes)
                verdict["webcam"] = check_webcam(page, out, classes, a.webcam_timeout)
            finally:
                ctx.close()
    except Exception as exc:  # noqa: BLE001 - recorded in the verdict, which the test asserts on
        verdict["error"] = f"{type(exc).__name__}: {exc}"
        verdict["traceback"] = traceback.format_exc()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        verdict["seconds"] = round(time.monotonic() - t0, 1)
        (out / "verdict.json").write_text(json.dumps(verdict, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
