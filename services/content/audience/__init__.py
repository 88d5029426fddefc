"""Who each advocate is for the audience rules, as sharing announces them (chorus.advocates).

Sharing owns advocate profiles, and the organisation's directory (SCIM) writes them there; the
library reads the same team, department and location here, so what an advocate may see and what
they may share agree (issue 16). Until an advocate's profile has arrived, their token's claims
stand in.
"""
