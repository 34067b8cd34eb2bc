"""The local backend of a study: jobs side by side on their GPUs (or CPU slots), a cell after the
pretraining it reads, failures that stop only the jobs waiting for them, resumption. The jobs'
commands run for real (bash, torchrun's script) with a stand-in Python that records what each
command got and writes the files the real tools write."""
import json
import os
import sys
from itertools import combinations

import pytest

from medtrans.analysis.study import build_plan, load_study, run_study

DINO = 'configs/dino/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.py'
CELL = 'configs/classification/deit-s/deit-s_in1k-dino_1xb64_plateau_aptos2019-224.py'
RANDOM = 'configs/classification/deit-s/deit-s_random_1xb64_plateau_aptos2019-224.py'

FAKE_PYTHON = '''#!{python}
"""Stands in for Python: records the tool's call, fails for configs named *fail*, and writes
what the tool would (checkpoints, test metrics, exports)."""
import json, os, sys, time
args = sys.argv[1:]
tool = next(a for a in args if a.endswith('.py') and 'tools/' in a)
rest = args[args.index(tool) + 1:]
work = rest[rest.index('--work-dir') + 1] if '--work-dir' in rest else rest[0]
call = dict(tool=os.path.basename(tool), config=rest[0], args=args, start=time.time(),
            gpus=os.environ.get('CUDA_VISIBLE_DEVICES'), threads=os.environ['OMP_NUM_THREADS'])
time.sleep(0.3)
call['end'] = time.time()
with open(os.environ['CALLS'], 'a') as f:
    f.write(json.dumps(call) + '\\n')
if 'fail' in rest[0]:
    sys.exit(3)
if call['tool'] == 'train.py':
    open(os.path.join(work, 'iter_1.pth'), 'w').close()
    open(os.path.join(work, 'best_kappa_iter_1.pth'), 'w').close()
elif call['tool'] in ('test.py', 'knn_eval.py'):
    os.makedirs(os.path.join(work, 'metrics'), exist_ok=True)
    with open(os.path.join(work, 'metrics', 'test_latest.json'), 'w') as f:
        json.dump(dict(metrics=dict(kappa=0.5)), f)
elif call['tool'] == 'export_backbone.py':
    os.makedirs(os.path.dirname(rest[1]), exist_ok=True)
    open(rest[1], 'w').close()
'''


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
    path = tmp_path / 'python'
    path.write_text(FAKE_PYTHON.format(python=sys.executable))
    path.chmod(0o755)
    monkeypatch.setenv('CALLS', str(tmp_path / 'calls.jsonl'))
    return str(path)


def _calls(tmp_path):
    with open(tmp_path / 'calls.jsonl') as f:
        return [json.loads(line) for line in f]


def _spec(repo_root, tmp_path):
    """Two DINO pretrainings (one fails), cells reading each export, a cell that fails and one
    without a pretraining; two seeds."""
    configs = tmp_path / 'configs'
    configs.mkdir()
    cells = []
    for name in ('good', 'fail'):
        (configs / f'dino_{name}_4xb64.py').write_text(f"_base_ = ['{repo_root / DINO}']\n")
        (configs / f'reads_{name}_1xb64.py').write_text(
            f"_base_ = ['{repo_root / CELL}']\npretrained = '{tmp_path}/{name}.safetensors'\n"
            'model = dict(backbone=dict(pretrained=pretrained))\n')
        cells.append(f'reads_{name}_1xb64')
    (configs / 'random_1xb64.py').write_text(f"_base_ = ['{repo_root / RANDOM}']\n")
    (configs / 'random_fail_1xb64.py').write_text(f"_base_ = ['{repo_root / RANDOM}']\n")
    cells += ['random_1xb64', 'random_fail_1xb64']
    spec = tmp_path / 'spec.py'
    spec.write_text(
        f"work_root = '{tmp_path / 'work'}'\nseeds = [0, 1]\ncells = [\n"
        + ''.join(f"    dict(table='T', row='{c}', column='c', config='{configs}/{c}.py'),\n"
                  for c in cells)
        + ']\npretraining = [\n'
        + ''.join(f"    dict(config='{configs}/dino_{n}_4xb64.py', "
                  f"export='{tmp_path}/{n}.safetensors'),\n" for n in ('good', 'fail'))
        + ']\n')
    return str(spec)


def test_jobs_run_side_by_side_on_their_gpus_and_a_failure_stops_only_its_dependents(
        repo_root, tmp_path, fake_python):
    os.chdir(repo_root)
    study = load_study(_spec(repo_root, tmp_path))
    plan = build_plan(study, gpus=4)
    lines = []
    outcome = run_study(plan, gpu_ids=['0', '1', '2', '3'], python=fake_python, live=False,
                        print_fn=lines.append, poll_s=0.05)
    expected = {'pretraining/dino_good_4xb64': 'done', 'pretraining/dino_fail_4xb64': 'failed'}
    for seed in (0, 1):
        expected.update({f'reads_good_1xb64/seed{seed}': 'done',
                         f'reads_fail_1xb64/seed{seed}': 'blocked',
                         f'random_1xb64/seed{seed}': 'done',
                         f'random_fail_1xb64/seed{seed}': 'failed'})
    assert outcome.states == expected
    assert not outcome.ok
    work = tmp_path / 'work'
    assert outcome.report() == [
        '2 blocked, 5 done, 3 failed',
        f'failed: pretraining/dino_fail_4xb64 (log: {work}/pretraining/dino_fail_4xb64/study.log)',
        f'failed: random_fail_1xb64/seed0 (log: {work}/random_fail_1xb64/seed0/study.log)',
        f'failed: random_fail_1xb64/seed1 (log: {work}/random_fail_1xb64/seed1/study.log)',
        'blocked: reads_fail_1xb64/seed0 (waits for a failed job)',
        'blocked: reads_fail_1xb64/seed1 (waits for a failed job)']
    log = (work / 'random_fail_1xb64' / 'seed0' / 'study.log').read_text()
    assert log.startswith(f'$ {fake_python} tools/train.py ')

    calls = _calls(tmp_path)
    by_config = {}
    for call in calls:
        by_config.setdefault(os.path.basename(call['config']), []).append(call)
    # DINO on the 4 GPUs of its recipe through torchrun; each cell on one GPU.
    dino = by_config['dino_good_4xb64.py'][0]
    assert dino['gpus'] == '0,1,2,3' and '--nproc_per_node=4' in dino['args']
    assert {call['gpus'] for call in by_config['random_1xb64.py']} <= {'0', '1', '2', '3'}
    # Never two jobs on one GPU at once; cells side by side.
    intervals = [(set(call['gpus'].split(',')), call['start'], call['end']) for call in calls]
    for (gpus_a, start_a, end_a), (gpus_b, start_b, end_b) in combinations(intervals, 2):
        assert not (gpus_a & gpus_b and start_a < end_b and start_b < end_a)
    cells = [call for call in calls if call['gpus'] in ('0', '1', '2', '3')]
    assert any(a['start'] < b['end'] and b['start'] < a['end']
               for a, b in combinations(cells, 2))
    # A cell starts after the pretraining whose export it reads.
    export_end = next(c['end'] for c in calls if c['tool'] == 'export_backbone.py')
    assert all(call['start'] > export_end for call in by_config['reads_good_1xb64.py'])
    record = json.load(open(work / 'reads_good_1xb64' / 'seed1' / 'study_run.json'))
    assert {key: record[key] for key in ('seed', 'gpus', 'batch_per_gpu', 'accumulate',
                                         'total_batch', 'lr')} == dict(
        seed=1, gpus=1, batch_per_gpu=64, accumulate=1, total_batch=64, lr=1e-4)
    assert any('2 blocked' in line for line in lines)

    # Again: the done jobs are skipped; the failed run again, their dependents stay blocked.
    os.remove(tmp_path / 'calls.jsonl')
    again = run_study(build_plan(study, gpus=4), gpu_ids=['0', '1', '2', '3'],
                      python=fake_python, live=False, print_fn=lines.append, poll_s=0.05)
    assert again.states == expected
    assert sorted(os.path.basename(c['config']) for c in _calls(tmp_path)) == [
        'dino_fail_4xb64.py', 'random_fail_1xb64.py', 'random_fail_1xb64.py']


def test_on_the_cpu_max_parallel_bounds_the_jobs_and_each_gets_its_share_of_cores(
        repo_root, tmp_path, fake_python):
    os.chdir(repo_root)
    study = load_study(_spec(repo_root, tmp_path))
    study.pretraining = []
    study.runs = [run for run in study.runs if run.config.endswith('/random_1xb64.py')]
    study.runs += [run for run in load_study(_spec_copy(tmp_path)).runs]
    outcome = run_study(build_plan(study, gpus=0), max_parallel=2, python=fake_python,
                        live=False, print_fn=lambda line: None, poll_s=0.05)
    assert outcome.ok and len(outcome.states) == 4
    calls = _calls(tmp_path)
    assert {call['gpus'] for call in calls} == {''}  # no GPU
    cores = len(os.sched_getaffinity(0))
    assert {call['threads'] for call in calls} <= {str(max(1, cores // 2)),
                                                   str(max(1, -(-cores // 2)))}
    at_once = [sum(o['start'] <= c['start'] < o['end'] for o in calls) for c in calls]
    assert max(at_once) == 2  # side by side, never more than 2


def _spec_copy(tmp_path):
    """A second spec: two more random cells in another work root."""
    spec = tmp_path / 'spec2.py'
    spec.write_text(f"work_root = '{tmp_path / 'work2'}'\nseeds = [5, 6]\n"
                    f"cells = [dict(table='T', row='r', column='c', "
                    f"config='{tmp_path}/configs/random_1xb64.py')]\n")
    return str(spec)
