"""The paper setting measured on one GPU, in sections that each run in their own process under a time budget.

Run it through ``scripts/gpu_check.sh [--dry-run] --out DIR`` (which puts the repository on PYTHONPATH and,
where dvclive or clean-fid is missing, installs the wheels carried in ``.whl/``). Sections, in order:

1. ``env``        GPU name and memory, driver, CUDA, cuDNN, torch, Triton, bf16 support.
   ``stacked_seeds`` the default profile's AGM trained as S seeds stacked in one process (agm.training.stacked;
                  S = 1, 8, 32, 64 while the cap allows): seed-steps per second and the factor over one seed.
   ``converged_study`` the powered study at the default profile's plateau (docs/results/converged): baseline, AGM
                  at λ = 0.1, 1, 3, 10 and the shuffled control at λ = 1, each arm's seeds trained stacked, then
                  sampled (10,000), evaluated and scored per snapshot by the pipeline's own stages, rows as they land.
2. ``train``      paper-profile networks (profiles/paper.yaml), batch 128, 64x64x3 random data: baseline and AGM
                  steps in bf16 autocast, eager and eager + channels_last; ``train_compiled``: torch.compile
                  (with channels_last where it was faster eagerly). Step time, images/s, FLOPs, achieved
                  TFLOP/s and fraction of the dense bf16 peak (agm.training.peak_flops), peak memory, host syncs
                  per step, projected hours for 500k steps beside the paper's ~494 images/s
                  (agm.training.throughput does the measuring).
3. ``sample``     Euler-Maruyama with the EMA drift (float32 as stages/sample.py runs it, and bf16 autocast):
                  the largest batch that fits, images/s, projected minutes for 10k samples at NFE 500.
   ``attention``  scaled_dot_product_attention on the U-Net's transposed q/k/v views against contiguous copies.
4. ``correctness`` bf16 against float32 losses over the same first steps (stated tolerance); a short bf16
                  training on structured images whose loss must fall.
   ``stages``     the paper-path stages (prepare, features with a stand-in Inception, train baseline and AGM,
                  sample, evaluate), at the slow test's tiny sizes, run as dvc.yaml writes them, on this device.
5. ``extra_seeds`` if the budget has time left: the default profile's arms of the power study (baseline, AGM at
                  λ = 0.1 and 1, the shuffled control at λ = 1; ``--arms``) for extra seeds, trained, sampled
                  (10,000 samples each) and evaluated, as rows (extra_seeds.csv) plus the samples (one
                  extra_seeds_<arm>.npz per arm) for the power study.
6. ``no_detach``  the paper's stop-gradient claim (§4.4: without it training collapses within 20k steps): the
                  default profile's AGM and its no-stop-gradient control side by side for 3 seeds (``--first-seed``)
                  to 20,000 steps or the budget's end, their loss curves (no_detach_curves.csv) and the report's
                  collapse rule applied to each seed's curves as far as they got (a dry run: one seed).

Every section's result is merged into DIR/gpu_check.json and DIR/gpu_check.md as soon as it finishes, so a run
cut short still returns what it measured; DIR/gpu_check.log holds every section's output. ``--dry-run`` runs the
same code on the CPU with tests/tiny_params.yaml networks and tiny sizes, in a few minutes.
"""
