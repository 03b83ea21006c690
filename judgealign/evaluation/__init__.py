"""Measuring a judge against experts: agreement metrics, bootstrap intervals, reports,
held-out comparison of two judges, reproducible splits.

Named ``evaluation`` rather than ``agreement`` so that the subpackage never shadows the
public function ``judgealign.agreement``.
"""
