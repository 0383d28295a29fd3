"""Job files (prompts, prompts_file) that cannot run: refused before any weights load, nothing written."""

from pathlib import Path

from bad_inputs import Case


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "jobs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _used_folder(tmp_path: Path, model: Path) -> list[str]:
    """An output_dir holding another job's manifest."""
    folder = tmp_path / "out"
    folder.mkdir(exist_ok=True)
    (folder / "job.json").write_text('{"identity": "another job"}')
    return ["prompts=[a red circle]"]


NOT_JSON = '{"prompt": "a"}\n{prompt: b}\n'
TYPO = '{"prompt": "a", "stepz": 3}\n'

CASES = [
    Case("job: empty prompts file", lambda t, m: [f"prompts_file={_file(t, 'empty.txt', chr(10) * 3)}"],
         "holds no prompts"),
    Case("job: missing prompts file", ["prompts_file=/nonexistent/prompts.txt"],
         "prompts_file /nonexistent/prompts.txt does not exist"),
    Case("job: a line that is not JSON",
         lambda t, m: [f"prompts_file={_file(t, 'bad.jsonl', NOT_JSON)}"],
         "line 2 is not valid JSON"),
    Case("job: a line with an unknown key",
         lambda t, m: [f"prompts_file={_file(t, 'typo.jsonl', TYPO)}"],
         "line 1: unknown key 'stepz'"),
    Case("job: a line with a bad value", ["prompts=[{prompt: a, strength: 1.7, task: img2img}]"],
         "prompts[0]: "),
    Case("job: a line moving the output", ["prompts=[{prompt: a, output_dir: elsewhere}]"],
         "prompts[0] sets output_dir, which only the job itself may set"),
    Case("job: a random seed", ["prompts=[a]", "seed=-1"], "a job cannot resume with"),
    Case("job: prompts file of another kind", lambda t, m: [f"prompts_file={_file(t, 'p.csv', 'a')}"],
         "must be .txt (a prompt per line), .jsonl"),
    Case("job: changed job in the same folder", _used_folder, "holds another job"),
]
