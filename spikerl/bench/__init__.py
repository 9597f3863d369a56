"""The benchmark suite behind ``spikerl bench``: what every method costs on this machine.

Each section times one kind of work in repeated windows and reports the median with the
minimum and maximum, next to the machine it ran on (:mod:`.machine`):

* ``training``: env steps/s of training after warm-up on HalfCheetah-v4 (batch 256, one update
  per env step) for ANN-TD3, SAC, vanilla spiking TD3 and proxy-target TD3 (LIF, CLIF, DN), as
  ratios to ANN-TD3 from the same run, the raw env step rate as the floor, the matmul work of
  one training step and its roofline fraction (:mod:`.flops`); Stable-Baselines3 TD3 with the
  same networks when it is installed (the ``bench`` extra);
* ``sequence``: windows/s of the quadrotor controller's sequence update (L = 100, burn-in 50);
* ``conversion``: decisions/s of converted policies per neuron model, T = 8 and 32, batch 1
  and 256;
* ``quadrotor``: drone-steps/s of the vector env at N = 1, 64, 1024 and 4096;
* ``latency``: microseconds per decision at batch 1 for every policy kind.

:func:`~spikerl.bench.suite.run_suite` runs the sections; :mod:`.report` writes Markdown and
JSON.
"""

from .suite import SECTIONS, BenchSettings, run_suite

__all__ = ["SECTIONS", "BenchSettings", "run_suite"]
