"""--gpu and --warm-caches on the command line: bad --gpu input is one line and exit 2, nothing written."""
import pytest

from tests.cli.test_cli import assert_bad_run

BAD = [(["--device", "gpu", "--gpu", "-1"], "--gpu '-1': give GPU indices as non-negative whole numbers"),
       (["--device", "gpu", "--gpu", "x"], "--gpu 'x': give GPU indices"),
       (["--device", "gpu", "--gpu", "0,0"], "--gpu '0,0': give each GPU once"),
       (["--device", "gpu", "--gpu", "1", "--devices", "2"], "--devices 2 trains on 2 GPUs but --gpu names 1"),
       (["--device", "cpu", "--gpu", "1"], "--gpu picks the GPUs of GPU cells: add --device gpu"),
       (["--warm-caches=yes"], "ignored explicit argument")]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_gpu_input_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    assert_bad_run(args, message, capsys, tmp_path)


def test_a_gpu_index_this_process_cannot_see_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert_bad_run(["--device", "gpu", "--gpu", "1"], "this process sees 1 GPUs (CUDA_VISIBLE_DEVICES=3)", capsys,
                   tmp_path)
