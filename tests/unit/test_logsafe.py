"""User-chosen ids in structured logs: a tenant id that is an e-mail address is masked (Powertools data masking)."""


from stepcrew.logsafe import log_fields


def test_an_email_tenant_is_masked_and_other_fields_pass():
    assert log_fields(tenant="alice@example.com", run_id="r1", n=3) == {"tenant": "***@example.com", "run_id": "r1",
                                                                         "n": 3}
    assert log_fields(tenant="acme-corp", run_id="r1") == {"tenant": "acme-corp", "run_id": "r1"}
    assert log_fields(run_id="r1") == {"run_id": "r1"}


