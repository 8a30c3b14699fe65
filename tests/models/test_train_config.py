import pytest

from models.exceptions import ModelError
from models.student.config import DEFAULT_TRAIN_CONFIG, load_train_config


def test_example_config_loads():
    cfg = load_train_config(DEFAULT_TRAIN_CONFIG)
    assert cfg.held_out_clips and set(cfg.held_out_clips) <= set(cfg.clips)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clips: [a.mp4]\nepochs: -1\n", "epochs"),
        ("clips: [a.mp4]\ninput_width: 300\n", "input_width"),
        ("clips: [a.mp4]\nlearnin_rate: 0.1\n", "learnin_rate"),
        ("clips: [a.mp4]\nheld_out_clips: [b.mp4]\n", "b.mp4"),
        ("clips: [a.mp4]\ntrain_fraction: 0.9\ncalib_fraction: 0.09\n", "held-back"),
        ("clips: []\n", "clips"),
        ("clips: [a.mp4\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_bad_config_names_key_and_value(tmp_path, text, message):
    path = tmp_path / "train.yaml"
    path.write_text(text)
    with pytest.raises(ModelError, match=message) as info:
        load_train_config(path)
    assert str(path) in str(info.value)


def test_missing_config_points_to_example(tmp_path):
    with pytest.raises(ModelError, match="train.yaml"):
        load_train_config(tmp_path / "nope.yaml")
