"""A study on Slurm (``run_study.py --launcher slurm``): the ``sbatch`` commands and batch scripts
of a plan, then the jobs run through a fake Slurm on this machine (``tests/fake_slurm``): arrays,
``afterok`` dependencies, a failed dependency that cancels its dependents, jobs still queued not
submitted twice, and preemption (the warning signal, the requeue, the resume); at the end a real
smoke study run here and summarised, and its ImageNet+DINO cell on Slurm, one run preempted
mid-run, with the same results."""
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fake_slurm import fake_slurm

from medtrans.analysis.study import (
    RUN_RECORD,
    Job,
    Plan,
    SlurmOptions,
    Step,
    Study,
    build_plan,
    load_study,
)
from medtrans.analysis.study.slurm import plan_submissions, submit_plan
from medtrans.fileio import safe_load

DINO = 'configs/dino/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.py'
DINO_STEM = 'dino_deit-s_in1k_4xb64_300e_aptos2019-224-96'
DINO_EXPORT = f'checkpoints/dino/{DINO_STEM}.safetensors'
CELL = 'configs/classification/deit-s/deit-s_in1k-dino_1xb64_plateau_aptos2019-224.py'
CELL_STEM = 'deit-s_in1k-dino_1xb64_plateau_aptos2019-224'
RANDOM = 'configs/classification/deit-s/deit-s_random_1xb64_plateau_aptos2019-224.py'
TOY = 'tests/fake_slurm/toy_step.py'


class FakeSlurm:
    """The fake commands on ``PATH`` (this process's and the jobs'), its scheduler running."""

    def __init__(self, root: Path, monkeypatch, preempt: str = '', cpus: int = 2) -> None:
        self.root = root
        fake_slurm.install(str(root / 'bin'))
        monkeypatch.setenv('PATH', f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv('FAKE_SLURM_DIR', str(root / 'state'))
        cores = sorted(os.sched_getaffinity(0))
        env = dict(os.environ, FAKE_SLURM_PREEMPT=preempt,
                   FAKE_SLURM_CPUS=','.join(str(c) for c in (cores * cpus)[:cpus]))
        self.scheduler = subprocess.Popen([sys.executable, fake_slurm.__file__, 'scheduler'],
                                          env=env)

    def command(self, *words: str) -> str:
        out = subprocess.run(words, capture_output=True, text=True, check=True)
        return out.stdout

    def wait(self, timeout: float) -> None:
        """Until no task is pending or running."""
        end = time.monotonic() + timeout
        while self.command('squeue', '--me', '--noheader', '--array', '--format=%i %T %r'):
            assert self.scheduler.poll() is None, 'the fake scheduler died'
            assert time.monotonic() < end, self.command('squeue', '--me', '--array')
            time.sleep(0.2)

    def accounting(self, *ids: str) -> list:
        """``sacct``: per task, its id and state."""
        out = self.command('sacct', '--noheader', '--parsable2', '--allocations',
                           f'--jobs={",".join(ids)}', '--format=JobID,State')
        return [line.split('|') for line in out.splitlines()]

    @staticmethod
    def restarts() -> dict:
        return {task['id']: task['restarts'] for job in fake_slurm.read_state()['jobs']
                for task in job['tasks']}

    def stop(self) -> None:
        self.scheduler.terminate()
        self.scheduler.wait(30)


@pytest.fixture
def fake_slurm_factory(tmp_path, monkeypatch):
    started = []

    def start(**kwargs) -> FakeSlurm:
        started.append(FakeSlurm(tmp_path / 'fake_slurm', monkeypatch, **kwargs))
        return started[-1]

    yield start
    for fake in started:
        fake.stop()


def _spec(tmp_path: Path) -> str:
    spec = tmp_path / 'spec.py'
    spec.write_text(f"work_root = '{tmp_path / 'work'}'\nseeds = [2, 3]\n"
                    f"cells = [dict(table='T', row='r', column='c', config='{CELL}'),\n"
                    f"         dict(table='T', row='q', column='c', config='{RANDOM}', "
                    'seeds=[2])]\n'
                    f"pretraining = [dict(config='{DINO}', export='{DINO_EXPORT}')]\n")
    return str(spec)


def test_sbatch_commands_and_scripts_of_a_plan(repo_root, tmp_path):
    """The pretraining alone on its 4 GPUs (srun, one task per GPU), the cells that wait for it
    as one array, the other cell alone; each with the id of what it waits for."""
    os.chdir(repo_root)
    if osp.isfile(DINO_EXPORT):
        pytest.skip(f'{DINO_EXPORT} exists: its pretraining is done')
    plan = build_plan(load_study(_spec(tmp_path)))
    work, pre = tmp_path / 'work', tmp_path / 'work' / 'pretraining' / DINO_STEM
    slurm = work / 'slurm'
    calls, printed = [], []

    def sbatch(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, f'{1000 + len(calls)};cluster\n', '')

    options = SlurmOptions(partition='gpu', time='24:00:00', signal_seconds=120,
                           sbatch_args=('--qos=high', ), python='py3')
    ids = submit_plan(plan, options, run=sbatch, print_fn=printed.append)
    cells = f'cells-1gpu-after-{DINO_STEM}'
    random_cell = 'deit-s_random_1xb64_plateau_aptos2019-224.seed2'
    common = ['--partition=gpu', '--time=24:00:00', '--nodes=1']
    warn = ['--requeue', '--signal=B:USR1@120', '--open-mode=append']
    assert calls == [
        ['sbatch', '--parsable', f'--job-name=spec-pretraining.{DINO_STEM}', *common,
         '--ntasks=4', '--gres=gpu:4', *warn,
         f'--output={slurm}/pretraining.{DINO_STEM}-%j.out', '--qos=high',
         f'{slurm}/pretraining.{DINO_STEM}.sh'],
        ['sbatch', '--parsable', f'--job-name=spec-{cells}', *common, '--ntasks=1',
         '--gres=gpu:1', *warn, f'--output={slurm}/{cells}-%A_%a.out', '--array=0-1',
         '--dependency=afterok:1001', '--kill-on-invalid-dep=yes', '--qos=high',
         f'{slurm}/{cells}.sh'],
        ['sbatch', '--parsable', f'--job-name=spec-{random_cell}', *common, '--ntasks=1',
         '--gres=gpu:1', *warn, f'--output={slurm}/{random_cell}-%j.out', '--qos=high',
         f'{slurm}/{random_cell}.sh']]
    names = [f'pretraining/{DINO_STEM}', f'{CELL_STEM}/seed2', f'{CELL_STEM}/seed3',
             'deit-s_random_1xb64_plateau_aptos2019-224/seed2']
    assert ids == dict(zip(names, ['1001', '1002_0', '1002_1', '1003']))
    assert printed == ['\n'.join([
        f'study spec: 4 jobs in 3 sbatch calls (0 done, 0 still queued); scripts and logs in '
        f'{slurm}:', f'  1001  {names[0]}', f'  1002_0  {names[1]} (after 1001)',
        f'  1002_1  {names[2]} (after 1001)', f'  1003  {names[3]}'])]
    assert json.loads((slurm / 'submitted.json').read_text()) == ids
    assert all(osp.isfile(job.record_path) for job in plan.jobs)

    script = (slurm / f'pretraining.{DINO_STEM}.sh').read_text().splitlines()
    end = script.index(f'# pretraining/{DINO_STEM}: -> {DINO_EXPORT}; 4 GPU(s), batch 4x64x1 '
                       '= 256')
    preamble = script[:end]
    assert preamble[:4] == [
        '#!/usr/bin/env bash',
        f'# Study spec, Slurm job pretraining.{DINO_STEM}: written by tools/run_study.py '
        '(docs/study.md).', 'set -u', f'cd {repo_root}']
    assert script[end:] == [
        f'# pretraining/{DINO_STEM}: -> {DINO_EXPORT}; 4 GPU(s), batch 4x64x1 = 256',
        f"if [ -f {DINO_EXPORT} ]; then echo 'pretraining/{DINO_STEM}: done'; exit 0; fi",
        f'run srun --ntasks=4 py3 tools/train.py {DINO} --work-dir {pre} --resume --launcher '
        'slurm',
        f'run py3 tools/misc/export_backbone.py {pre} {DINO_EXPORT}']
    seed = [work / CELL_STEM / f'seed{s}' for s in (2, 3)]
    array = (slurm / f'{cells}.sh').read_text().splitlines()
    assert array[:end] == preamble[:1] + [
        f'# Study spec, Slurm job {cells}: written by tools/run_study.py (docs/study.md).'
    ] + preamble[2:]
    assert array[end:] == ['case "$SLURM_ARRAY_TASK_ID" in', *[line for s in (0, 1) for line in [
        f'{s})',
        f'    # {CELL_STEM}/seed{s + 2}: T | r | c; 1 GPU(s), batch 1x64x1 = 64',
        f'    if [ -f {seed[s]}/metrics/test_latest.json ]; then echo '
        f"'{CELL_STEM}/seed{s + 2}: done'; exit 0; fi",
        f'    run py3 tools/train.py {CELL} --work-dir {seed[s]} --resume --cfg-options '
        f'randomness.seed={s + 2}',
        f'    run py3 tools/test.py {CELL} "$(ls -t {seed[s]}/best_*.pth | head -n 1)" '
        f'--work-dir {seed[s]} --out {seed[s]}/predictions.csv',
        '    ;;']],
        '*)', '    echo "task $SLURM_ARRAY_TASK_ID: no such task in this array" >&2',
        '    exit 1', '    ;;', 'esac']


def test_the_dry_run_prints_the_sbatch_commands_and_scripts_and_writes_nothing(
        repo_root, tmp_path):
    spec = _spec(tmp_path)
    proc = subprocess.run(
        [sys.executable, 'tools/run_study.py', spec, '--launcher', 'slurm', '--dry-run',
         '--gpus', '2', '--account', 'lab', "--sbatch-args=--qos=high --mem=32G",
         '--signal-seconds', '90'], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    slurm = tmp_path / 'work' / 'slurm'
    lines = proc.stdout.splitlines()
    lines = lines[lines.index('#!/usr/bin/env bash'):]  # after the log of plugins loaded
    cells = f'cells-1gpu-after-{DINO_STEM}'
    options = ('--account=lab --nodes=1 --ntasks={n} --gres=gpu:{n} --requeue '
               '--signal=B:USR1@90 --open-mode=append --output={out}{more} --qos=high '
               '--mem=32G {script}')
    assert lines[:6] == [
        '#!/usr/bin/env bash',
        '# study spec: 4 jobs in 3 sbatch calls (0 done, 0 still queued); scripts and logs in '
        f'{slurm} (--dry-run: nothing written or submitted)',
        'set -euo pipefail',
        f'J1=$(sbatch --parsable --job-name=spec-pretraining.{DINO_STEM} ' + options.format(
            n=2, out=f'{slurm}/pretraining.{DINO_STEM}-%j.out', more='',
            script=f'{slurm}/pretraining.{DINO_STEM}.sh') + ')',
        f'J2=$(sbatch --parsable --job-name=spec-{cells} ' + options.format(
            n=1, out=f'{slurm}/{cells}-%A_%a.out', script=f'{slurm}/{cells}.sh',
            more=' --array=0-1 "--dependency=afterok:${J1}" --kill-on-invalid-dep=yes') + ')',
        'J3=$(sbatch --parsable --job-name=spec-deit-s_random_1xb64_plateau_aptos2019-224.seed2 '
        + options.format(
            n=1, out=f'{slurm}/deit-s_random_1xb64_plateau_aptos2019-224.seed2-%j.out', more='',
            script=f'{slurm}/deit-s_random_1xb64_plateau_aptos2019-224.seed2.sh') + ')']
    assert f'# ==> {slurm}/{cells}.sh <==' in lines
    # DINO's recipe (4 GPUs x 64) on at most 2 GPUs a job: 2 srun tasks x 128.
    assert f'# pretraining/{DINO_STEM}: -> {DINO_EXPORT}; 2 GPU(s), batch 2x128x1 = 256' in lines
    assert any(line.startswith(f'run srun --ntasks=2 {sys.executable} '
                               f'tools/train.py {DINO}') for line in lines)
    assert not (tmp_path / 'work').exists()


def _toy_plan(tmp_path: Path) -> Plan:
    """A pretraining ``p`` (acts on the warning as PreemptionHook does), two cells after it
    (an array; the second dies of the warning, as a test step would), a pretraining that
    fails and a cell after it."""
    work = tmp_path / 'work'

    def job(name, kind, after=(), flags=()):
        work_dir = str(work / name)
        export = str(work / 'exports' / f'{name[12:]}.safetensors') if kind != 'cell' else None
        out = export or osp.join(work_dir, 'metrics', 'test_latest.json')
        args = ('--iters', '4', '--state', f'{work_dir}/state', '--out', out, *flags)
        return Job(name, kind, TOY, 0, 0, 1, 1, 1, None, list(after), work_dir, 'todo',
                   [Step(TOY, args)], export=export, record=dict(config=TOY))

    jobs = [job('pretraining/p', 'pretraining', flags=['--preemptible']),
            job('pretraining/bad', 'pretraining', flags=['--fail']),
            job('c0', 'cell', ['pretraining/p']), job('c1', 'cell', ['pretraining/p']),
            job('d', 'cell', ['pretraining/bad'])]
    return Plan(Study('toy', str(work), []), jobs, gpus=0)


def test_fake_slurm_runs_arrays_after_dependencies_and_requeues_preempted_jobs(
        repo_root, tmp_path, fake_slurm_factory):
    os.chdir(repo_root)
    fake = fake_slurm_factory(preempt='toy-pretraining.p@iteration 1,'
                              'toy-cells-cpu-after-p_1@iteration 1')
    plan = _toy_plan(tmp_path)
    assert [(s.label, [j.name for j in s.jobs], s.after) for s in plan_submissions(plan)] == [
        ('pretraining.p', ['pretraining/p'], ()), ('pretraining.bad', ['pretraining/bad'], ()),
        ('cells-cpu-after-p', ['c0', 'c1'], ('pretraining/p', )),
        ('d', ['d'], ('pretraining/bad', ))]
    printed = []
    options = SlurmOptions(python=sys.executable)
    ids = submit_plan(plan, options, print_fn=printed.append)
    assert ids == {'pretraining/p': '1000', 'pretraining/bad': '1001', 'c0': '1002_0',
                   'c1': '1002_1', 'd': '1004'}
    # Submitted again while queued: nothing is submitted twice.
    assert submit_plan(plan, options, print_fn=printed.append) == ids
    assert printed[1] == ('study toy: 0 jobs in 0 sbatch calls (0 done, 5 still queued); '
                          f'scripts and logs in {tmp_path}/work/slurm')
    assert len(fake_slurm.read_state()['jobs']) == 4
    fake.wait(timeout=60)

    assert fake.accounting('1000', '1001', '1002', '1004') == [
        ['1000', 'COMPLETED'], ['1001', 'FAILED'], ['1002_0', 'COMPLETED'],
        ['1002_1', 'COMPLETED'], ['1004', 'CANCELLED']]
    assert fake.restarts() == {'1000': 1, '1001': 0, '1002_0': 0, '1002_1': 1, '1004': 0}
    assert fake_slurm.read_state()['requeues'] == ['1000', '1002_1']
    slurm = tmp_path / 'work' / 'slurm'
    # p took the warning after its first iteration, finished the one in progress, requeued
    # itself and resumed there: each iteration ran once. c1 died of it, and its script
    # requeued it.
    log = (slurm / 'pretraining.p-1000.out').read_text()
    assert re.findall(r'^iteration (\d)$', log, re.M) == ['1', '2', '3', '4']
    assert re.findall(r'^resumed at iteration (\d)$', log, re.M) in (['1'], ['2'], ['3'])
    log = (slurm / 'cells-cpu-after-p-1002_1.out').read_text()
    assert log.count('$ ') == 2, log
    assert re.findall(r'^resumed at iteration (\d)$', log, re.M) in (['1'], ['2'], ['3'])
    assert (tmp_path / 'work' / 'c1' / 'metrics' / 'test_latest.json').is_file()
    # The failed pretraining's dependent never ran.
    assert not (slurm / 'd-1004.out').exists() and not (tmp_path / 'work' / 'd' / 'state').exists()


def _synthetic_inputs(tmp_path: Path):
    import timm
    from test_engine.knn_setup import write_aptos

    from medtrans.models.utils import save_state_dict
    data = write_aptos(tmp_path / 'aptos')
    weights = tmp_path / 'weights'
    save_state_dict(timm.create_model('deit_small_patch16_224').state_dict(),
                    str(weights / 'deit_small_patch16_224.fb_in1k.safetensors'))
    return data, weights


@pytest.mark.slow
def test_a_smoke_study_here_and_on_slurm_with_a_preempted_cell(repo_root, tmp_path,
                                                              fake_slurm_factory):
    """Table 1's smoke mode for DeiT-S on APTOS run here, seed 0 (the DINO pretraining, its
    export, the three cells side by side, then the summary), and its ImageNet+DINO cell on
    Slurm, seeds 0 and 1: submitted (the pretraining, then the two runs as an array after it),
    the first run warned after its first iteration; its results equal those run here (one core
    per job in both). (A failed job stopping only its dependents, and the end naming the
    failed jobs and their logs: ``test_study_local``, with real processes.)"""
    data, weights = _synthetic_inputs(tmp_path)
    cells = f'cells-cpu-after-{DINO_STEM}'
    fake = fake_slurm_factory(preempt=f'table1-{cells}_0@Iter(train) [1/4]')
    command = [sys.executable, 'tools/run_study.py', 'configs/studies/table1.py', '--smoke',
               '--only', 'dataset=aptos2019', '--only', 'model=deit-s', '--data-root',
               f'aptos2019={data}', '--weights-dir', str(weights), '--gpus', '0']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    cores = sorted(os.sched_getaffinity(0))[:2]
    here = tmp_path / 'here'
    local = subprocess.Popen(
        command + ['--only', 'seed=0', '--work-root', str(here), '--max-parallel', '2'],
        cwd=repo_root,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, cores))
    work = tmp_path / 'slurm'
    proc = subprocess.run(command + ['--only', 'init=ImageNet+DINO', '--only', 'seed=0,1',
                                     '--work-root', str(work), '--launcher', 'slurm',
                                     '--time', '0:30:00'],
                          cwd=repo_root, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-4:] == [
        'study table1: 3 jobs in 2 sbatch calls (0 done, 0 still queued); scripts and logs in '
        f'{work}/slurm:', f'  1000  pretraining/{DINO_STEM}',
        f'  1001_0  {CELL_STEM}/seed0 (after 1000)', f'  1001_1  {CELL_STEM}/seed1 (after 1000)']
    fake.wait(timeout=600)
    out, _ = local.communicate(timeout=600)
    assert local.returncode == 0 and out.splitlines()[-1] == 'study table1: 4 done', out[-3000:]
    assert '2 running' in out  # side by side

    # Here: the export, the run record of the recipe, the summary of the three rows.
    export = f'exports/{DINO_STEM}.safetensors'
    cell = here / CELL_STEM / 'seed0'
    record = json.loads((cell / RUN_RECORD).read_text())
    assert {key: record[key] for key in ('gpus', 'batch_per_gpu', 'accumulate', 'total_batch',
                                         'lr', 'smoke', 'pretrained', 'img_size')} == dict(
        gpus=0, batch_per_gpu=4, accumulate=1, total_batch=4, lr=1e-4, smoke=True,
        pretrained=str(here / export), img_size=64)
    summary = subprocess.run([sys.executable, 'tools/analysis/summarize.py', str(here),
                              '--out-dir', str(tmp_path / 'summary'), '--bootstrap', '20'],
                             cwd=repo_root, capture_output=True, text=True, env=env)
    assert summary.returncode == 0, summary.stderr[-3000:]
    rows = [line.split(' |')[0] for line in
            (tmp_path / 'summary' / 'table_1.md').read_text().splitlines()
            if line.startswith('| ') and 'DeiT-S' in line]
    assert sorted(rows) == ['| ImageNet DeiT-S', '| ImageNet+DINO DeiT-S', '| random DeiT-S']

    # On Slurm: the warned run checkpointed mid-run, requeued itself and resumed there.
    assert fake.accounting('1000', '1001') == [
        ['1000', 'COMPLETED'], ['1001_0', 'COMPLETED'], ['1001_1', 'COMPLETED']]
    assert fake.restarts() == {'1000': 0, '1001_0': 1, '1001_1': 0}
    assert fake_slurm.read_state()['requeues'] == ['1001_0']
    log = (work / 'slurm' / f'{cells}-1001_0.out').read_text()
    stopped = re.findall(r'SIGUSR1: stopping after iteration (\d+) to be resumed later', log)
    assert stopped and stopped[0] in ('1', '2', '3'), log[-3000:]  # mid-run: of 4
    assert 'Slurm job 1001_0 requeued: it resumes from this checkpoint.' in log
    assert re.findall(r'resumed epoch: \d+, iter: (\d+)', log) == stopped
    assert (work / CELL_STEM / 'seed1' / 'metrics' / 'test_latest.json').is_file()
    ours, theirs = (root / CELL_STEM / 'seed0' for root in (work, here))
    assert json.loads((ours / RUN_RECORD).read_text())['gpus'] == 0
    assert json.loads((ours / 'metrics' / 'test_latest.json').read_text())['metrics'] == \
        json.loads((theirs / 'metrics' / 'test_latest.json').read_text())['metrics']
    assert (ours / 'predictions.csv').read_text() == (theirs / 'predictions.csv').read_text()
    weights = [safe_load(str(root / 'iter_4.pth'))['state_dict'] for root in (ours, theirs)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert (work / export).read_bytes() == (here / export).read_bytes()
