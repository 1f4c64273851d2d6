"""`reasonloop view`: what the page is built from, and that it is one offline file."""

import json
import re
import subprocess
import sys

from viewer_run import make_run

from reasonloop.view import ViewConfig, collect, main, render


def test_collect_flags_samples_and_finds_steps_trees_and_config(tmp_path):
    make_run(tmp_path / "r")
    data = collect(tmp_path / "r")
    assert [s["label"] for s in data["steps"]] == ["step 1", "step 2", "step 3"]
    step1, step3 = data["steps"][0]["samples"], data["steps"][2]["samples"]
    assert [s["flags"] for s in step1] == [[], ["right answer through a wrong step"],
                                           ["rewarded like a right answer while wrong"]]
    assert all("reward_hacking alarm at this step" in s["flags"] for s in step3)  # the alarm fired at step 3
    assert step1[2]["meta"]["step_scores"] == [0.9, 0.1] and step1[2]["meta"]["turns"][0]["tool"] == "python"
    assert data["metrics"][1]["policy/kl"] is None  # NaN is not JSON
    assert data["trees"][0]["tree"]["children"][0]["children"][0]["chosen"] is True
    assert data["config"].startswith("task:")
    assert len(collect(tmp_path / "r", samples_per_step=1)["steps"][0]["samples"]) == 1



def test_selftrain_iterations_are_steps_too_but_not_their_training_subsets(tmp_path):
    from reasonloop.store.jsonl import read_jsonl, write_jsonl
    from reasonloop.types import Sample

    run = make_run(tmp_path / "r")
    samples = read_jsonl(run.rollouts_path(1), Sample)
    write_jsonl(run.samples_dir / "iter_001.jsonl", samples)
    write_jsonl(run.samples_dir / "iter_001_train.jsonl", samples[:1])
    labels = [s["label"] for s in collect(run.root)["steps"]]
    assert labels == ["step 1", "step 2", "step 3", "iteration 1"]


def test_the_page_is_one_file_that_fetches_nothing_and_embeds_its_data_safely(tmp_path):
    make_run(tmp_path / "r")
    out = main(ViewConfig(run=str(tmp_path / "r")))
    html = out.read_text()
    assert out == tmp_path / "r" / "view.html"
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", html)  # nothing loaded from anywhere
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")
    payload = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.DOTALL).group(1)
    data = json.loads(payload.replace("<\\/", "</"))  # a completion holding "</script>" cannot end the tag
    assert data["steps"][0]["samples"][2]["text"].endswith("</script><b>x")
    assert render(data).count("</script>") == html.count("</script>")


def test_view_command_writes_the_page_and_rejects_a_missing_run(tmp_path):
    make_run(tmp_path / "r")
    env_cmd = [sys.executable, "-m", "reasonloop", "view"]
    done = subprocess.run([*env_cmd, str(tmp_path / "r"), f"output={tmp_path / 'page.html'}"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0 and (tmp_path / "page.html").exists() and "3 steps, 9 samples, 1 search trees" in " ".join((done.stdout + done.stderr).split())
    bad = subprocess.run([*env_cmd, str(tmp_path / "nope")], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "is not a run directory" in bad.stderr and "Traceback" not in bad.stderr
