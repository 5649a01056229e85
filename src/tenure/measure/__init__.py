"""Measurement: experiments and holdouts, uplift evaluation, KPIs and the closed loop.

Each part is its own module (:mod:`tenure.measure.experiments`,
:mod:`tenure.measure.uplift`); import the one you need.
"""
