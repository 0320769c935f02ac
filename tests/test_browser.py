"""The panels in a real browser: JupyterLab + Chromium driven by Playwright.

Opens tests/_widgets_tour.ipynb, runs all cells, changes a value in the config panel, trains a few GRPO steps on
the tiny model with the Train button, and checks that the curves were redrawn and the sample inspector has rows.
Then tests/_blocking_tour.ipynb: `panel.train()` blocking its cell, as the tutorials do; the panel shows itself,
its curves are redrawn every few seconds, and Stop pressed while the cell runs ends the run within two steps.
Then tests/_guardrails_tour.ipynb: a GRPO run with a constant reward trains in a TrainPanel; the health message shows
under its status line, the health and knob marks on its curves, and the config panel's fit table.
Screenshots are kept under tests/artifacts/ (git-ignored; ALIGNTUNE_ARTIFACTS=folder puts them elsewhere).
"""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
NB = HERE / "_widgets_tour.ipynb"
BLOCKING_NB = HERE / "_blocking_tour.ipynb"
GUARD_NB = HERE / "_guardrails_tour.ipynb"
ART = Path(os.environ.get("ALIGNTUNE_ARTIFACTS") or HERE / "artifacts")
BIN = Path(sys.executable).parent


def _chromium():
    for c in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and Path(c).exists(): return c
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A fresh JupyterLab server on loopback, from this virtual environment, with its own settings; stopped afterwards."
    if not (BIN / "jupyter-lab").exists(): pytest.skip(f"jupyter-lab is not installed in {BIN} (pip install jupyterlab)")
    work = tmp_path_factory.mktemp("lab")
    for nb in (NB, BLOCKING_NB, GUARD_NB): shutil.copy(nb, work / nb.name)
    settings = work / "labsettings"
    (settings / "@jupyterlab/apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    # render every cell (JupyterLab 4 otherwise defers off-screen cells, which Playwright reads as not visible)
    (settings / "@jupyterlab/notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "ALIGNTUNE_QUIET": "1", "PYTHONPATH": str(HERE.parent)}
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "jupyter-lab"), "--no-browser", f"--port={port}", "--ServerApp.port_retries=0", "--ip=127.0.0.1",
                             "--allow-root", f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None: pytest.fail(f"jupyter-lab exited: {(work / 'server.log').read_text()[-2000:]}")
            try:
                if urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).status == 200: break
            except OSError: time.sleep(0.5)
        else: pytest.fail("jupyter-lab did not answer within 60 s")
        yield dict(url=url, token=token, work=work)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(15)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        log.close()
        ART.mkdir(parents=True, exist_ok=True); shutil.copy(work / "server.log", ART / "jupyter-server.log")


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-quic"]


def _open_and_run_all(browser, lab, nb, console, viewport=(1400, 1000)):
    "A page with notebook `nb` open in JupyterLab and Run All started, once its kernel is idle."
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.goto(f"{lab['url']}/lab/tree/{nb.name}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=60_000)   # the kernel is really up
    page.click(".lm-MenuBar-item:has-text('Run')")
    page.click(".lm-Menu-item[data-command='runmenu:run-all']")
    return page


def test_panels_in_jupyterlab(lab):
    chromium = _chromium()
    if chromium is None: pytest.skip("Chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chromium)")
    from playwright.sync_api import sync_playwright
    ART.mkdir(parents=True, exist_ok=True)
    console = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = _open_and_run_all(browser, lab, NB, console)

            # the panels render as widgets, not as their text fallback
            train_btn = page.locator(".aligntune-train-panel button.widget-button:has-text('Train')")
            train_btn.wait_for(timeout=90_000)
            page.wait_for_selector(".aligntune-run-compare", timeout=60_000)
            page.wait_for_selector(".aligntune-eval-view", timeout=60_000)
            text = page.inner_text(".jp-Notebook")
            assert "VBox(children" not in text and "Loading widget" not in text, text[:2000]
            cfgp = page.locator(".aligntune-config-panel")
            assert cfgp.count() == 1 and page.locator(".aligntune-sample-inspector").count() == 2   # the inspector cell + the panel's tab
            assert cfgp.locator(".widget-dropdown select").first.input_value() == "GRPO"   # the algorithm's title from the table
            page.screenshot(path=str(ART / "01_after_run_all.png"), full_page=False)

            # change a value in the config panel: max steps 4 -> 12; the YAML follows (12 steps: time for the curves to be seen before the end)
            cfgp.scroll_into_view_if_needed()
            steps = cfgp.locator(".widget-inline-hbox:has(label:has-text('max steps')) input")
            steps.fill("12"); steps.press("Enter")
            page.wait_for_function("() => [...document.querySelectorAll('.aligntune-config-panel pre')].some(e => e.textContent.includes('max_steps: 12'))",
                                   timeout=15_000)
            cfgp.scroll_into_view_if_needed()
            cfgp.screenshot(path=str(ART / "02_config_panel_max_steps_12.png"))

            # train from the panel (in the background); the charts appear, then change
            panel = page.locator(".aligntune-train-panel")
            train_btn.click()
            curves = panel.locator(".aligntune-live-curves")
            page.wait_for_selector(".aligntune-train-panel .aligntune-live-curves svg", timeout=120_000)
            first_html = curves.inner_html()
            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(ART / "03_training_live.png"))
            page.wait_for_function("() => /finished|stopped|failed/.test(document.querySelector('.aligntune-train-panel').innerText)", timeout=120_000)
            status = panel.inner_text()
            assert "failed" not in status and "Error" not in status, status[:3000]
            assert "finished" in status and "step 12/12" in status, status[:1000]
            assert curves.inner_html() != first_html, "the curves were not redrawn"
            updates = int(status.split(" plot updates")[0].rsplit("·", 1)[-1].strip())
            assert updates >= 2, status
            panel.screenshot(path=str(ART / "04_training_finished_curves.png"))

            # the samples tab of the panel has rows with per-reward scores
            panel.locator(".lm-TabBar-tab:has-text('samples')").click()
            insp = panel.locator(".aligntune-sample-inspector")
            insp.locator("table tbody tr").first.wait_for(timeout=15_000)
            n_rows = insp.locator("table tbody tr").count()
            head = insp.locator("table thead").inner_text()
            assert n_rows > 0 and "r:exact_match" in head and "r:length" in head and "advantage" in head, head
            panel.screenshot(path=str(ART / "05_samples_tab.png"))
            page.screenshot(path=str(ART / "06_page.png"), full_page=True)
        finally:
            (ART / "browser-console.log").write_text("\n".join(console))
            browser.close()


STATUS_JS = "() => { const s = document.querySelector('.aligntune-train-panel'); const c = s && s.querySelector('.aligntune-live-curves');" \
            " return s ? [s.innerText, c ? c.innerHTML : ''] : null }"


def _step(text):
    "The step a panel's status line shows ('step 12/100000 · ...', '<b>stopped</b> · step 14/100000 ...'), or None."
    import re
    m = re.search(r"step (\d+)/", text)
    return int(m.group(1)) if m else None


def test_blocking_train_redraws_and_stops(lab):
    "`panel.train()` in a cell, the tutorials' pattern: the panel is live from the first steps, redrawn every few seconds, and Stop works."
    chromium = _chromium()
    if chromium is None: pytest.skip("Chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chromium)")
    from playwright.sync_api import sync_playwright
    ART.mkdir(parents=True, exist_ok=True)
    console = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = _open_and_run_all(browser, lab, BLOCKING_NB, console, viewport=(1024, 900))
            panel = page.locator(".aligntune-train-panel")
            # the panel shows itself while the cell is still running, and moves
            page.wait_for_function("() => { const s = document.querySelector('.aligntune-train-panel');"
                                   " return s && /step [1-9]\\d*\\//.test(s.innerText) && s.querySelector('.aligntune-live-curves svg') }",
                                   timeout=180_000)
            panel.scroll_into_view_if_needed()
            assert page.locator(".jp-StatusBar-Widget:has-text('| Busy')").count() == 1   # the cell is still training
            panel.screenshot(path=str(ART / "11_blocking_first_steps.png"))
            # 30 s of training: note when the charts change
            t0, last_html, changes, steps = time.monotonic(), None, [], []
            while time.monotonic() - t0 < 30:
                text, html = page.evaluate(STATUS_JS)
                if html != last_html: changes.append(time.monotonic() - t0); last_html = html
                steps.append(_step(text))
                if 14 < time.monotonic() - t0 < 15.5 and not (ART / "12_blocking_15s.png").exists():
                    panel.screenshot(path=str(ART / "12_blocking_15s.png"))
                time.sleep(0.25)
            gaps = [b - a for a, b in zip([0.0] + changes, changes + [30.0])]
            assert max(gaps) <= 5.0, f"the curves were redrawn at {changes} s: a gap of {max(gaps):.1f} s"
            assert steps[-1] and steps[-1] > steps[0], steps   # training went on while we watched
            # Stop, pressed while the cell runs: the run ends within two steps of the one on show when pressed
            k = _step(page.evaluate(STATUS_JS)[0])
            panel.locator("button.widget-button:has-text('Stop')").click()
            page.wait_for_function("() => /stopping|stopped/.test(document.querySelector('.aligntune-train-panel').innerText)", timeout=30_000)
            panel.screenshot(path=str(ART / "13_blocking_stop_pressed.png"))
            page.wait_for_function("() => /stopped/.test(document.querySelector('.aligntune-train-panel').innerText)", timeout=60_000)
            final = panel.inner_text()
            end = _step(final.split("stopped", 1)[1])
            assert end is not None and end <= k + 2, f"Stop pressed at step {k}; the run ended at step {end}: {final[:400]}"
            # the cell ends: its printed result and the PNG of the curves stay in the output
            page.wait_for_selector(".jp-OutputArea-output:has-text('ended: stopped')", timeout=60_000)
            page.wait_for_selector(".jp-OutputArea-output img", timeout=30_000)
            page.screenshot(path=str(ART / "14_blocking_stopped_with_picture.png"), full_page=True)
            print(f"redraws at {[round(c, 1) for c in changes]} s; longest gap {max(gaps):.1f} s; Stop at step {k}, ended at {end}")
        finally:
            (ART / "browser-console-blocking.log").write_text("\n".join(console))
            browser.close()


def test_health_message_and_marks_in_the_train_panel(lab):
    "A GRPO run with a constant reward: the zero-variance message appears under the status line while it trains, the marks on the curves."
    chromium = _chromium()
    if chromium is None: pytest.skip("Chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chromium)")
    from playwright.sync_api import sync_playwright
    ART.mkdir(parents=True, exist_ok=True)
    console = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = _open_and_run_all(browser, lab, GUARD_NB, console, viewport=(1200, 1000))
            panel = page.locator(".aligntune-train-panel")
            health = panel.locator(".aligntune-health")
            health.locator("text=zero_reward_std").wait_for(timeout=240_000)   # visible, on the panel's face: no tab to open
            assert "raise num_generations or temperature" in health.inner_text().lower(), health.inner_text()
            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(ART / "21_health_message_live.png"))
            page.wait_for_function("() => /(finished|failed) · step/.test(document.querySelector('.aligntune-train-panel').innerText)", timeout=240_000)   # the status line, not the words of a message
            assert "finished" in panel.inner_text(), panel.inner_text()[:2000]
            marks = panel.locator(".aligntune-live-curves .aligntune-mark")
            assert marks.count() > 0 and panel.locator(".aligntune-live-curves .aligntune-mark[data-event='knob']").count() > 0
            assert "learning_rate=0.0002" in panel.locator(".aligntune-live-curves").inner_text()
            panel.screenshot(path=str(ART / "22_health_and_knob_marks.png"))
            panel.locator(".lm-TabBar-tab:has-text('knobs')").click()
            lr = panel.locator(".widget-inline-hbox:has(label:has-text('learning rate')) input")
            lr.wait_for(timeout=15_000)
            assert float(lr.input_value()) == 2e-4, lr.input_value()   # the knob set from code, in its box
            panel.screenshot(path=str(ART / "23_knobs_tab.png"))
            page.wait_for_selector(".jp-OutputArea-output img", timeout=60_000)     # the PNG of the curves, with the marks
            page.locator(".jp-OutputArea-output img").first.screenshot(path=str(ART / "24_final_png.png"))
            fit = page.locator(".aligntune-config-panel .aligntune-fit")
            fit.wait_for(timeout=60_000)
            assert "GiB needed" in fit.inner_text() and "T4" in fit.inner_text(), fit.inner_text()
            fit.scroll_into_view_if_needed()
            fit.screenshot(path=str(ART / "25_config_fit_table.png"))
        finally:
            (ART / "browser-console-guardrails.log").write_text("\n".join(console))
            browser.close()
