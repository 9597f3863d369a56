"""The spiking core: explicit-state neuron steps ``(input, state) -> (output, state)``.

:mod:`~spikerl.snn.functional` (the pure IF/LIF/CLIF/DN steps and their resets),
:mod:`~spikerl.snn.surrogate` (spike functions with surrogate gradients),
:mod:`~spikerl.snn.layers` (thin neuron modules over the steps, a layer run over T ticks),
:mod:`~spikerl.snn.kernel` (the fused LIF recurrence, with its eager reference),
:mod:`~spikerl.snn.coding` (encoders and readouts), :mod:`~spikerl.snn.conversion` (the
conversion neurons with CRPI), :mod:`~spikerl.snn.energy` (MAC/SOP counting and energy) and
:mod:`~spikerl.snn.schedules` (surrogate-slope schedules).
"""
