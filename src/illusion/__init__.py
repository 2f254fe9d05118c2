"""illusion: representation-level evaluation of machine unlearning.

The library behind the executable book of "An Illusion of Unlearning? Assessing Machine
Unlearning Through Internal Representations" (Gao, Unal, Rangamani, Zhu; AISTATS 2026).
"""

__version__ = "0.1.0"
