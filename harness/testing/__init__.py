"""The conformance kit of alignment methods: ``check_method`` runs a method on the tiny world at a
small budget and checks the contract every built-in honours (``harness method-check NAME`` prints
its table). A plugin's own tests import it::

    from harness.testing import check_method

    def test_my_method_conforms():
        report = check_method("my_method")
        assert report.ok, report.summary()
"""

from harness.testing.conformance import CHECKS, Check, Report, check_method, check_params

__all__ = ["CHECKS", "Check", "Report", "check_method", "check_params"]
