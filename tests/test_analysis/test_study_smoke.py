"""Real study runs: Table 3's random rows (each seed its own initialisation), and the smoke mode
of Table 1 end to end on CPU (DINO pretraining, exports, the three DeiT-S cells side by side,
a failing dataset that stops only its own jobs, then the summary)."""
import json
import os
import subprocess
import sys

import pytest
import timm
from test_engine.knn_setup import APTOS_CONFIG, tiny_options, write_aptos

from medtrans.analysis.study import RUN_RECORD
from medtrans.apis import enable_predictions_csv, knn_evaluate, load_config, prepare_knn_config
from medtrans.models.utils import save_state_dict


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


@pytest.mark.slow
def test_the_smoke_mode_runs_table1_for_one_model_and_dataset_and_is_summarised(
        repo_root, tmp_path):
    data = write_aptos(tmp_path / 'aptos')
    weights = tmp_path / 'weights'
    save_state_dict(timm.create_model('deit_small_patch16_224').state_dict(),
                    str(weights / 'deit_small_patch16_224.fb_in1k.safetensors'))
    work = tmp_path / 'work'
    command = [sys.executable, 'tools/run_study.py', 'configs/studies/table1.py', '--smoke',
               '--only', 'dataset=aptos2019', '--only', 'model=deit-s', '--data-root',
               f'aptos2019={data}', '--weights-dir', str(weights), '--max-parallel', '2',
               '--work-root', str(work)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == 'study table1: 4 done'
    assert '2 running' in proc.stdout  # side by side
    export = work / 'exports' / 'dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.safetensors'
    assert export.is_file()
    cell = work / 'deit-s_in1k-dino_1xb64_plateau_aptos2019-224' / 'seed0'
    record = json.loads((cell / RUN_RECORD).read_text())
    assert {key: record[key] for key in ('gpus', 'batch_per_gpu', 'accumulate', 'total_batch',
                                         'lr', 'smoke', 'pretrained', 'img_size')} == dict(
        gpus=0, batch_per_gpu=4, accumulate=1, total_batch=4, lr=1e-4, smoke=True,
        pretrained=str(export), img_size=64)
    assert (cell / 'predictions.csv').is_file()

    out = tmp_path / 'summary'
    summary = subprocess.run([sys.executable, 'tools/analysis/summarize.py', str(work),
                              '--out-dir', str(out), '--bootstrap', '20'], cwd=repo_root,
                             capture_output=True, text=True, env=env)
    assert summary.returncode == 0, summary.stderr[-3000:]
    rows = [line.split(' |')[0] for line in (out / 'table_1.md').read_text().splitlines()
            if line.startswith('| ') and 'DeiT-S' in line]
    assert sorted(rows) == ['| ImageNet DeiT-S', '| ImageNet+DINO DeiT-S', '| random DeiT-S']

    # Another dataset whose folder holds no data: its jobs fail, the one that reads its
    # DINO export is not started, the APTOS jobs stay done, and the tool says so.
    empty = tmp_path / 'empty'
    empty.mkdir()
    command[command.index('dataset=aptos2019')] = 'dataset=aptos2019,cbis-ddsm'
    proc = subprocess.run(command + ['--data-root', f'cbis-ddsm={empty}'], cwd=repo_root,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    end = proc.stdout.splitlines()
    dino = 'pretraining/dino_deit-s_in1k_4xb64_300e_cbis-ddsm-224-96'
    assert end[end.index('study table1: 1 blocked, 4 done, 3 failed'):] == [
        'study table1: 1 blocked, 4 done, 3 failed',
        f'failed: {dino} (log: {work}/{dino}/study.log)',
        *[f'failed: deit-s_{init}_1xb64_plateau_cbis-ddsm-224/seed0 (log: '
          f'{work}/deit-s_{init}_1xb64_plateau_cbis-ddsm-224/seed0/study.log)'
          for init in ('random', 'in1k')],
        'blocked: deit-s_in1k-dino_1xb64_plateau_cbis-ddsm-224/seed0 (waits for a failed job)']
