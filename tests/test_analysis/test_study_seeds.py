"""Table 3's random rows: each seed its own initialisation. (The smoke mode of Table 1 runs end
to end in ``test_study_slurm``, here and on Slurm.)"""
from test_engine.knn_setup import APTOS_CONFIG, tiny_options, write_aptos

from medtrans.apis import enable_predictions_csv, knn_evaluate, load_config, prepare_knn_config


def test_knn_of_a_random_init_is_one_initialisation_per_seed(tmp_path):
    """What ``tools/knn_eval.py --cfg-options randomness.seed=S`` does (the study's Table 3
    random rows): the seed reaches the initialisation."""
    data_root = write_aptos(tmp_path / 'APTOS2019')

    def scores(seed: int, name: str) -> str:
        options = dict(tiny_options(data_root), **{'randomness.seed': seed})
        cfg = prepare_knn_config(load_config(str(APTOS_CONFIG), options), str(APTOS_CONFIG),
                                 work_dir=str(tmp_path / name))
        enable_predictions_csv(cfg, str(tmp_path / f'{name}.csv'))
        knn_evaluate(cfg)
        return (tmp_path / f'{name}.csv').read_text()

    first = scores(1, 'a')
    assert scores(1, 'b') == first
    assert scores(2, 'c') != first
