"""SSM part: state-space models: HiPPO, S4/S4D and Mamba's selective scan.

One module per chapter of ``docs/ssm/``; see the chapter for the derivations."""
