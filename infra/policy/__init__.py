"""spotcube's CrossGuard policy pack: the rules (:mod:`infra.policy.rules`) and the pack."""
