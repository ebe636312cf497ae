"""A synthetic retail bank whose behaviour carries signal, with the truth known.

The latent world
----------------
Each customer belongs to a hidden segment (``SEGMENTS``: mass 40 %, young salaried 20 %,
affluent family 12 %, high net worth 2 %, small-business owner 8 %, retiree 12 %, farmer 6 %)
that sets age, income, assets (deposit balance, log-normal), risk tolerance, employment and city
tier. Each customer also has a hidden affinity per product family (log-normal), which shapes both
the products already held and future purchases, so "similar after purchase" is real.

Initial holdings are as skewed as a real bank's: demand deposit, debit card, mobile banking,
payroll and the standard credit card dominate; co-ownership is planted (payroll -> credit card
and consumer loan, mortgage -> home insurance, any fund -> fund SIP, wealth R(n) -> R(n+1), ...).

Every day customers may start a hidden *need* (``NEEDS``: consumer credit, car, house, business
credit, home equity, windfall, invest, protect, travel). A need shows in behaviour before it turns
into a purchase: a loan or mortgage inquiry on the 95599 hotline, a wealth/fund/insurance inquiry,
a large inflow (windfall), travel and hotel card spend (travel). While a need is active the
purchase hazard of its products rises, about 7x more once it has shown. POS categories and hotel star
level follow wealth. Complaints damp purchases until they are resolved.

Purchases on day ``d`` are drawn from each customer's daily hazard per product, computed from the
state at the start of day ``d``: (segment base rate x co-ownership boost x need conversion, or the
repeat rate of a held multi-hold product, + the after-purchase hazard) x family affinity x tier
fit x eligibility (age, minimum assets, risk tolerance >= risk level, not held unless ``multi_hold``).

After purchase (sequential signal): buying a product raises, from the next day on, the hazard of
a few related products (``_AFTER_PURCHASE``: mortgage -> home insurance and a home equity
(renovation) loan; a first credit card -> card instalment plan; large CD -> wealth R2/R3; car
loan -> accident insurance; payroll account -> credit card, pension account), fading with a
half-life of ``_AFTER_PURCHASE_HALF_LIFE_DAYS`` (10) days. Only purchases in the simulated days
plant it (the backdated history is older than its fade). It is a time effect on top of
co-ownership, which lasts as long as the product is held.

Output and ground truth
-----------------------
Events are real ``schemas.events`` events, one JSON object a line, written by the contract's
codec (``schemas.codec.encode_columns``: byte-identical to ``schemas.codec.encode`` of the
decoded event). For each customer, first a backdated history
(``CustomerProfileUpdated`` at account opening, the demand-deposit purchase, an opening deposit
whose ``balance_after_minor`` is the current balance, then one ``ProductPurchased`` per product
held at the start, ascending in time); then ``days`` days of ``DepositPosted``,
``HotlineCallEnded``, ``CardPaymentMade`` and ``ProductPurchased`` in time order. Customer ids are
``C`` + 9 digits of the customer index (``C000000042``). Same seed, size and start: same bytes.

After the last day (the *cutoff*, ``start + days``) the world runs ``holdout_days`` more days
without writing events; the purchases in that window are the labels. The truth file
``<events>.truth.npz`` (``numpy.load(path)``, no pickle) holds:

================ ===================== ==================================================
customer_ids     str  [C]              ``C000000000`` ...; row order of every matrix
product_ids      str  [P]              catalog order; column order of every matrix
propensity       float32 [C, P]        1 - exp(-daily hazard at cutoff x holdout_days): the
                                       chance to buy in the holdout if nothing changed; 0 where
                                       not eligible or a single-hold product is already held
holdout_pairs    int32 [N, 2]          (customer_idx, product_idx) of holdout purchases
holdout_day      int16 [N]             day of each holdout purchase, 0 = first day after cutoff
held_at_cutoff   bool [C, P]           products held at the cutoff
segment          int8 [C]              index into segment_names
segment_names    str  [7]              ``SEGMENTS``
after_hazard     float32 [C, P]        the after-purchase daily hazard at the cutoff (before
                                       affinity, tier fit, eligibility); the oracle's
                                       propensity averages it over the holdout's fade
meta             str  (0-d)            JSON: seed, customers, days, holdout_days, start,
                                       cutoff (ISO UTC), catalog_hash, counts, the planted
                                       after-purchase table and half-life
================ ===================== ==================================================

and a readable sidecar ``<events>.truth.json`` with ``meta``, ``product_ids`` and
``segment_names``. Read it with ``load_truth(path) -> Truth``.

Offer response model: ``accept_probability(true_propensity, channel)`` and ``draw_offer_response``.

API
---
- ``write_jsonl(out, catalog, customers, days, seed, start=DEFAULT_START, holdout_days=14)``:
  the fast path (``nbo simulate``); writes events and truth, returns a ``WriteSummary``.
- ``simulate(catalog, customers, days, seed, start, holdout_days) -> SimulationResult``: in
  memory (``.records``, ``.lines``, ``.types``, ``.customers``, ``.truth``), fine up to ~100k customers.
- ``simulate_events(catalog, customers, days, seed, start)``: validated event models.
- ``Simulator(catalog, customers, seed, start)``: ``run(days)`` yields ``EventBatch``es, then
  ``truth(holdout_days) -> Truth``; ``hazard(rows)`` is the true daily hazard, ``propensity(rows)``
  the true propensity now; ``scale_appeal(product_id, factor, from_day)`` plants a drift (a
  product's appeal halves or doubles from a day on: its daily hazard and the chance that an offer
  of it is accepted are both multiplied by the factor); ``record_purchases`` applies purchases made
  outside the daily draw (accepted offers, ``simulator.visits``).
- ``load_truth(path) -> Truth``, ``truth_path_for(events_path)``, ``truth_arrays(truth)``.
"""

from __future__ import annotations

import json
import sys
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from domain.catalog import VALUE_TIER_FLOORS_MINOR, VALUE_TIERS, Catalog
from schemas.codec import decode, encode_columns
from schemas.events import (
    CardPaymentMade,
    CustomerProfileUpdated,
    DepositPosted,
    Event,
    HotlineCallEnded,
    ProductPurchased,
)

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
DEFAULT_HOLDOUT_DAYS = 14
DAY_S = 86_400

SEGMENTS: tuple[str, ...] = (
    "mass",
    "young_salaried",
    "affluent_family",
    "high_net_worth",
    "small_business",
    "retiree",
    "farmer",
)
SEGMENT_SHARE = np.array([0.40, 0.20, 0.12, 0.02, 0.08, 0.12, 0.06])

NEEDS: tuple[str, ...] = (
    "consumer_credit",
    "car",
    "house",
    "business_credit",
    "home_equity",
    "windfall",
    "invest",
    "protect",
    "travel",
)

#: Event type codes used in batches, in the order events of one second are written.
TYPE_NAMES: tuple[str, ...] = ("profile", "deposit", "hotline", "pos", "purchase")
T_PROFILE, T_DEPOSIT, T_HOTLINE, T_POS, T_PURCHASE = range(5)

# --------------------------------------------------------------------------------------------
# Segment parameters (order of SEGMENTS)
# --------------------------------------------------------------------------------------------
_AGE_RANGE = np.array([(23, 60), (22, 32), (32, 52), (35, 68), (28, 58), (60, 82), (28, 66)])
_ASSETS_MEDIAN_CNY = np.array([30e3, 40e3, 500e3, 3.0e6, 250e3, 180e3, 25e3])
_ASSETS_SIGMA = np.array([1.0, 0.9, 0.6, 0.7, 1.0, 0.9, 0.9])
_INCOME_MEDIAN_CNY = np.array([5_000, 9_000, 25_000, 80_000, 20_000, 4_000, 2_500])
_RISK_P = np.array(
    [
        [0.25, 0.35, 0.25, 0.10, 0.05],
        [0.10, 0.25, 0.35, 0.20, 0.10],
        [0.10, 0.25, 0.35, 0.20, 0.10],
        [0.05, 0.15, 0.30, 0.30, 0.20],
        [0.10, 0.25, 0.30, 0.20, 0.15],
        [0.45, 0.35, 0.15, 0.04, 0.01],
        [0.45, 0.35, 0.15, 0.04, 0.01],
    ]
)
_EMPLOYMENTS = ("salaried", "self_employed", "business_owner", "retired", "farmer", "student", "other")
_EMPLOYMENT_P = np.array(
    [
        [0.60, 0.20, 0.00, 0.00, 0.00, 0.00, 0.20],
        [0.90, 0.00, 0.00, 0.00, 0.00, 0.05, 0.05],
        [0.85, 0.15, 0.00, 0.00, 0.00, 0.00, 0.00],
        [0.40, 0.00, 0.60, 0.00, 0.00, 0.00, 0.00],
        [0.00, 0.30, 0.70, 0.00, 0.00, 0.00, 0.00],
        [0.00, 0.00, 0.00, 1.00, 0.00, 0.00, 0.00],
        [0.00, 0.00, 0.00, 0.00, 1.00, 0.00, 0.00],
    ]
)
_CITY_TIER_P = np.array(
    [
        [0.15, 0.35, 0.35, 0.15],
        [0.35, 0.40, 0.20, 0.05],
        [0.40, 0.40, 0.15, 0.05],
        [0.60, 0.30, 0.10, 0.00],
        [0.20, 0.35, 0.30, 0.15],
        [0.15, 0.30, 0.35, 0.20],
        [0.00, 0.00, 0.20, 0.80],
    ]
)
# Daily event rates per customer.
_POS_RATE = np.array([0.50, 0.80, 0.90, 1.00, 0.70, 0.30, 0.15])
_ATM_RATE = np.array([0.12, 0.06, 0.06, 0.03, 0.10, 0.12, 0.15])
_COUNTER_RATE = np.array([0.02, 0.01, 0.02, 0.03, 0.05, 0.08, 0.06])
_MOBILE_TXN_RATE = np.array([0.10, 0.20, 0.15, 0.10, 0.30, 0.02, 0.02])
_HOTLINE_RATE = np.array([0.006, 0.006, 0.008, 0.010, 0.010, 0.010, 0.004])
_COMPLAINT_RATE = 0.0008

# Initial holding probability per product and segment
# (mass, young, affluent, hnw, small business, retiree, farmer).
_HOLD_P: dict[str, tuple[float, ...]] = {
    "demand_deposit": (1, 1, 1, 1, 1, 1, 1),
    "debit_card": (0.95, 0.97, 0.97, 0.95, 0.95, 0.90, 0.85),
    "mobile_banking": (0.65, 0.92, 0.90, 0.85, 0.80, 0.35, 0.30),
    "payroll_service": (0.35, 0.75, 0.60, 0.30, 0.05, 0.02, 0.01),
    "pension_service": (0, 0, 0, 0.05, 0, 0.85, 0.30),
    "utility_autopay": (0.25, 0.20, 0.40, 0.30, 0.30, 0.35, 0.10),
    "personal_pension_account": (0.03, 0.05, 0.12, 0.15, 0.05, 0, 0),
    "notice_deposit": (0.01, 0.01, 0.08, 0.15, 0.08, 0.05, 0.01),
    "time_deposit_3m": (0.05, 0.03, 0.08, 0.08, 0.06, 0.10, 0.05),
    "time_deposit_1y": (0.15, 0.08, 0.25, 0.25, 0.15, 0.40, 0.15),
    "time_deposit_3y": (0.08, 0.02, 0.15, 0.15, 0.08, 0.35, 0.10),
    "large_cd": (0.01, 0.005, 0.20, 0.35, 0.10, 0.15, 0.005),
    "large_cd_3y": (0.005, 0, 0.10, 0.20, 0.05, 0.10, 0),
    "mortgage": (0.08, 0.06, 0.35, 0.20, 0.12, 0.01, 0.01),
    "consumer_loan": (0.05, 0.08, 0.05, 0.01, 0.05, 0, 0.02),
    "car_loan": (0.02, 0.03, 0.08, 0.02, 0.04, 0, 0.01),
    "home_equity_loan": (0.002, 0, 0.03, 0.05, 0.05, 0, 0),
    "small_business_loan": (0.005, 0, 0.01, 0.08, 0.30, 0, 0.02),
    "agri_loan": (0, 0, 0, 0, 0, 0, 0.35),
    "credit_card_standard": (0.25, 0.35, 0.20, 0.05, 0.20, 0.05, 0.05),
    "credit_card_gold": (0.04, 0.05, 0.25, 0.15, 0.12, 0.01, 0.002),
    "credit_card_platinum": (0.002, 0.002, 0.08, 0.40, 0.06, 0.002, 0),
    "credit_card_travel": (0.005, 0.02, 0.06, 0.15, 0.02, 0.002, 0),
    "card_instalment": (0.03, 0.06, 0.04, 0.005, 0.02, 0.002, 0.002),
    "money_market_fund": (0.15, 0.30, 0.30, 0.25, 0.15, 0.05, 0.02),
    "bond_fund": (0.03, 0.04, 0.12, 0.20, 0.05, 0.05, 0.005),
    "mixed_fund": (0.03, 0.06, 0.12, 0.20, 0.06, 0.02, 0.005),
    "equity_fund": (0.01, 0.03, 0.08, 0.20, 0.05, 0.01, 0.001),
    "index_fund": (0.02, 0.06, 0.08, 0.10, 0.04, 0.01, 0.001),
    "qdii_fund": (0.001, 0.002, 0.02, 0.10, 0.01, 0.001, 0),
    "fund_sip": (0.01, 0.04, 0.06, 0.05, 0.02, 0.005, 0.001),
    "wealth_r1": (0.08, 0.12, 0.25, 0.30, 0.15, 0.10, 0.02),
    "wealth_r2": (0.05, 0.05, 0.30, 0.40, 0.15, 0.15, 0.02),
    "wealth_r3": (0.01, 0.02, 0.12, 0.30, 0.08, 0.03, 0.002),
    "wealth_r4": (0.002, 0.002, 0.05, 0.20, 0.04, 0.01, 0),
    "wealth_r5": (0, 0, 0.002, 0.12, 0.01, 0, 0),
    "protection_insurance": (0.04, 0.05, 0.20, 0.25, 0.08, 0.01, 0.02),
    "annuity_insurance": (0.01, 0.002, 0.08, 0.20, 0.05, 0.08, 0.002),
    "home_insurance": (0.01, 0.01, 0.05, 0.08, 0.03, 0.03, 0.01),
    "accident_insurance": (0.03, 0.04, 0.06, 0.05, 0.05, 0.02, 0.04),
    "whole_life_insurance": (0.005, 0.002, 0.06, 0.20, 0.04, 0.05, 0.001),
    "gold_accumulation": (0.02, 0.05, 0.05, 0.06, 0.03, 0.04, 0.01),
    "physical_gold": (0.005, 0.002, 0.03, 0.08, 0.03, 0.04, 0.01),
}
#: Fallback holding probability by family for catalog products the table does not name.
_FAMILY_HOLD_P = {
    "deposit": 0.02, "time_deposit": 0.05, "cd": 0.02, "wealth": 0.03, "fund": 0.02,
    "insurance": 0.02, "gold": 0.01, "loan": 0.01, "credit_card": 0.02, "service": 0.05,
}

#: Co-ownership: holding the key multiplies the hazard of each listed product.
_CO_OWNERSHIP: dict[str, dict[str, float]] = {
    "payroll_service": {"credit_card_standard": 3.0, "credit_card_gold": 2.0, "consumer_loan": 2.0,
                        "mobile_banking": 1.5, "personal_pension_account": 2.0},
    "mortgage": {"home_insurance": 8.0, "home_equity_loan": 4.0, "protection_insurance": 1.8},
    "money_market_fund": {"fund_sip": 3.0, "bond_fund": 1.8, "index_fund": 1.5},
    "bond_fund": {"fund_sip": 4.0, "mixed_fund": 2.0},
    "mixed_fund": {"fund_sip": 4.0, "equity_fund": 2.0, "bond_fund": 1.5},
    "equity_fund": {"fund_sip": 4.0, "index_fund": 2.0, "qdii_fund": 2.0},
    "index_fund": {"fund_sip": 4.0, "equity_fund": 1.5},
    "fund_sip": {"mixed_fund": 1.5, "index_fund": 2.0},
    "credit_card_standard": {"card_instalment": 5.0, "credit_card_gold": 1.5},
    "credit_card_gold": {"card_instalment": 3.0, "credit_card_platinum": 1.5},
    "credit_card_platinum": {"credit_card_travel": 2.0, "wealth_r4": 1.5},
    "wealth_r1": {"wealth_r2": 2.0},
    "wealth_r2": {"wealth_r3": 2.0, "large_cd": 1.5},
    "wealth_r3": {"wealth_r4": 2.0},
    "wealth_r4": {"wealth_r5": 2.5},
    "large_cd": {"large_cd_3y": 3.0, "wealth_r2": 1.5},
    "time_deposit_1y": {"time_deposit_3y": 2.0, "large_cd": 1.5},
    "car_loan": {"accident_insurance": 2.5},
    "small_business_loan": {"credit_card_gold": 1.5},
    "pension_service": {"time_deposit_3y": 1.5, "annuity_insurance": 1.5},
    "protection_insurance": {"annuity_insurance": 1.5, "whole_life_insurance": 1.5},
    "annuity_insurance": {"whole_life_insurance": 2.0},
    "gold_accumulation": {"physical_gold": 2.0},
}
#: After purchase: buying the key adds, from the next day on, this daily hazard to each listed
#: product (before affinity, tier fit and eligibility), fading with ``_AFTER_PURCHASE_HALF_LIFE_DAYS``.
#: It comes on top of co-ownership (``_CO_OWNERSHIP``, which lasts as long as the key is held): a
#: mortgage is followed within weeks by home insurance and a renovation (home equity) loan; a
#: customer's first credit card by an instalment plan; a large CD (bought when an older one
#: matures and is rolled over) by a wealth product; a car loan by accident cover; a new payroll
#: account by a credit card and a pension account.
_AFTER_PURCHASE: dict[str, dict[str, float]] = {
    "mortgage": {"home_insurance": 0.030, "home_equity_loan": 0.012},
    "credit_card_standard": {"card_instalment": 0.025},
    "credit_card_gold": {"card_instalment": 0.025},
    "large_cd": {"wealth_r2": 0.012, "wealth_r3": 0.008},
    "large_cd_3y": {"wealth_r2": 0.010, "wealth_r3": 0.006},
    "car_loan": {"accident_insurance": 0.020},
    "payroll_service": {"credit_card_standard": 0.015, "personal_pension_account": 0.006},
}
#: Keys whose after-purchase boost needs the customer to have held no credit card before (a *first* card).
_AFTER_PURCHASE_FIRST_CARD = ("credit_card_standard", "credit_card_gold")
_AFTER_PURCHASE_HALF_LIFE_DAYS = 10.0
#: Products that need another product first (any of the listed families or ids).
_REQUIRES_CREDIT_CARD = ("card_instalment",)

#: Need start rate per day and segment.
_NEED_START = np.array(
    [
        [0.0040, 0.0060, 0.0030, 0.0005, 0.0030, 0.0005, 0.0020],  # consumer_credit
        [0.0010, 0.0015, 0.0020, 0.0005, 0.0010, 0.0000, 0.0005],  # car
        [0.0006, 0.0012, 0.0015, 0.0008, 0.0008, 0.0001, 0.0002],  # house
        [0.0003, 0.0000, 0.0003, 0.0020, 0.0060, 0.0000, 0.0060],  # business_credit
        [0.0002, 0.0000, 0.0010, 0.0010, 0.0010, 0.0000, 0.0000],  # home_equity
        [0.0015, 0.0010, 0.0030, 0.0040, 0.0030, 0.0020, 0.0020],  # windfall
        [0.0015, 0.0030, 0.0040, 0.0050, 0.0020, 0.0020, 0.0003],  # invest
        [0.0010, 0.0015, 0.0030, 0.0020, 0.0015, 0.0005, 0.0005],  # protect
        [0.0008, 0.0020, 0.0020, 0.0030, 0.0010, 0.0005, 0.0000],  # travel
    ]
).T * 0.4  # -> [segment, need]; about 1 customer in 15 shows a loan need a month
_NEED_END_P = 1 / 40  # a need lapses after ~40 days if not met
#: Daily probability that an active need that has not shown yet shows in behaviour.
_NEED_SHOW_P = np.array([0.35, 0.35, 0.35, 0.35, 0.35, 1.0, 0.25, 0.30, 0.35])
_NEED_REPEAT_P = 0.03  # an inquiry that has shown is repeated now and then
_INITIAL_NEED_DAYS = 15  # needs open at the start ~ start rate x this
_NEED_HIDDEN_WEIGHT = 0.15  # hazard share of a need that has not shown yet
_NEED_INTENT = ("loan_inquiry", "loan_inquiry", "mortgage_inquiry", "loan_inquiry", "loan_inquiry",
                None, "wealth_inquiry", "insurance_inquiry", None)
#: Daily purchase hazard per product while a need is active (before affinity and eligibility).
_NEED_CONVERSION: dict[str, dict[str, float]] = {
    "consumer_credit": {"consumer_loan": 0.05, "card_instalment": 0.03, "credit_card_standard": 0.01},
    "car": {"car_loan": 0.06, "accident_insurance": 0.005},
    "house": {"mortgage": 0.05, "home_insurance": 0.01},
    "business_credit": {"small_business_loan": 0.05, "agri_loan": 0.06},
    "home_equity": {"home_equity_loan": 0.05},
    "windfall": {"large_cd": 0.04, "large_cd_3y": 0.015, "time_deposit_1y": 0.02, "time_deposit_3y": 0.01,
                 "notice_deposit": 0.01, "wealth_r2": 0.02, "wealth_r3": 0.008},
    "invest": {"money_market_fund": 0.01, "bond_fund": 0.012, "mixed_fund": 0.012, "equity_fund": 0.01,
               "index_fund": 0.01, "qdii_fund": 0.004, "fund_sip": 0.012, "wealth_r2": 0.01,
               "wealth_r3": 0.01, "wealth_r4": 0.006, "wealth_r5": 0.004, "gold_accumulation": 0.006},
    "protect": {"protection_insurance": 0.04, "annuity_insurance": 0.015, "accident_insurance": 0.015,
                "whole_life_insurance": 0.01, "home_insurance": 0.005},
    "travel": {"credit_card_travel": 0.04, "credit_card_gold": 0.01, "credit_card_platinum": 0.01,
               "accident_insurance": 0.005},
}
_NEED_FULFILLED_AT = 0.01  # buying a product converting at least this (before scaling) fulfils the need
_NEED_CONVERSION_SCALE = 0.8  # needs convert slowly: most are still open, and visible, at a cutoff

_ORGANIC_RATE = 0.0002  # daily hazard = initial holding probability x this
_REPEAT_RATE_BY_FAMILY = {"time_deposit": 0.0003, "cd": 0.0003, "wealth": 0.0003, "fund": 0.0002,
                          "deposit": 0.0002, "gold": 0.0002, "insurance": 0.0001, "credit_card": 0.0004}
_OFF_TIER_FACTOR = 0.15
_COMPLAINT_DAMP = 0.2
_AFFINITY_SIGMA = 0.6
_MAX_DAILY_HAZARD = 0.5

# POS: merchant categories, base weights, wealth elasticity, MCCs and amounts (CNY median).
_POS_CATEGORIES = ("groceries", "dining", "travel", "hotel", "luxury", "fuel", "electronics", "education",
                   "healthcare", "utilities", "entertainment", "online_retail", "other")
_POS_WEIGHT = np.array([30, 20, 3, 2, 0.3, 8, 3, 2, 3, 4, 5, 20, 5], dtype=np.float64)
_POS_WEALTH_ELASTICITY = np.array([-0.3, 0.1, 0.8, 0.9, 1.5, 0.0, 0.2, 0.3, 0.0, -0.2, 0.1, -0.1, 0.0])
_POS_MCCS = (("5411", "5499"), ("5812", "5814"), ("4511", "3000"), ("7011", "3640"), ("5944", "5094"),
             ("5541", "5542"), ("5732",), ("8220", "8211"), ("8062", "8011"), ("4900",), ("7832", "7996"),
             ("5999", "5964"), ("5311", "5200"))
_POS_AMOUNT_CNY = np.array([80, 120, 1500, 150, 8000, 300, 2000, 3000, 400, 200, 150, 150, 200], dtype=np.float64)
_POS_ONLINE_P = np.array([0.02, 0.05, 0.4, 0.3, 0.05, 0.0, 0.3, 0.2, 0.02, 0.5, 0.2, 1.0, 0.1])
_FOREIGN = ("JP", "TH", "SG", "KR", "US", "FR", "GB", "AU")
_CAT_TRAVEL, _CAT_HOTEL, _CAT_LUXURY = 2, 3, 4

_HOTLINE_INTENTS = ("balance_query", "lost_card", "card_limit", "loan_inquiry", "mortgage_inquiry",
                    "wealth_inquiry", "fund_inquiry", "insurance_inquiry", "complaint", "transfer_help", "other")
_BACKGROUND_INTENT_P = np.array([0.35, 0.08, 0.10, 0.015, 0.005, 0.02, 0.015, 0.015, 0.0, 0.15, 0.25])
_INTENT_DURATION_S = np.array([120, 300, 240, 420, 480, 360, 300, 360, 600, 240, 180], dtype=np.float64)

_PURCHASE_CHANNELS = ("branch", "call_centre", "mobile", "online", "relationship_manager")
_DEP_KINDS = ("deposit", "withdrawal")
_DEP_CHANNELS = ("counter", "atm", "mobile", "transfer")
_DEP_PURPOSES = ("salary", "pension", "cash", "transfer", "bill_payment", "loan_repayment", "investment", "other")
_SOURCES = {T_PROFILE: "kyc", T_DEPOSIT: "core_banking", T_HOTLINE: "cti", T_POS: "card_switch"}
_PURCHASE_SOURCE = {0: "core_banking", 1: "cti", 2: "mobile_banking", 3: "mobile_banking", 4: "core_banking"}

_CHUNK = 65_536  # customers per block when computing hazards (fixed: results do not depend on it)
_HISTORY_BLOCK = 100_000  # customers per history batch (fixed, part of the seeded stream)
_MAX_WITHDRAWALS_PER_DAY = 3

#: How much more likely a customer buys when a touchpoint offers the product (``accept_probability``).
CHANNEL_LIFT: dict[str, float] = {"teller": 6.0, "call_centre": 4.0, "mobile": 2.0}
_DECLINE_REASONS = ("not_interested", "has_it_elsewhere", "too_expensive", "bad_timing", "needs_advice", "other")
_DECLINE_REASON_P = np.array([0.45, 0.15, 0.12, 0.15, 0.08, 0.05])


def accept_probability(true_propensity: float | np.ndarray, channel: str) -> float | np.ndarray:
    """Probability that a customer accepts an offer of a product on ``channel``, given the
    true propensity (P(buy within the holdout window) from ``Truth.propensity``).

    An offer pulls the purchase forward: ``1 - (1 - p) ** lift`` with ``CHANNEL_LIFT`` per
    channel (a teller face to face lifts most, the mobile slot least), capped at 0.95.
    """
    lift = CHANNEL_LIFT[channel]
    p = np.clip(np.asarray(true_propensity, dtype=np.float64), 0.0, 1.0)
    result = np.minimum(1.0 - (1.0 - p) ** lift, 0.95)
    return float(result) if result.ndim == 0 else result


def offer_accept_chance(true_propensity: float, channel: str, appeal: float = 1.0) -> float:
    """The probability that an offer is accepted: ``accept_probability`` x ``appeal``, capped at 0.95."""
    return min(float(accept_probability(true_propensity, channel)) * appeal, 0.95)


def draw_offer_response(true_propensity: float, channel: str, rng: np.random.Generator,
                        appeal: float = 1.0) -> tuple[str, str | None]:
    """One simulated answer to an offer: (outcome, decline_reason). Outcomes are ``accepted``,
    ``declined`` (with a reason) or ``ignored`` (a mobile slot nobody tapped). The offer is
    accepted with ``accept_probability`` x ``appeal`` (a planted drift, ``Simulator.scale_appeal``),
    capped at 0.95 (``offer_accept_chance``)."""
    if rng.random() < offer_accept_chance(true_propensity, channel, appeal):
        return "accepted", None
    if channel == "mobile" and rng.random() < 0.7:
        return "ignored", None
    reason = _DECLINE_REASONS[int(rng.choice(len(_DECLINE_REASONS), p=_DECLINE_REASON_P))]
    return "declined", reason


# --------------------------------------------------------------------------------------------
# Truth
# --------------------------------------------------------------------------------------------


@dataclass
class Truth:
    """Ground truth at the cutoff; see the module docstring for shapes and meaning."""

    customer_ids: np.ndarray
    product_ids: tuple[str, ...]
    propensity: np.ndarray
    holdout_pairs: np.ndarray
    holdout_day: np.ndarray
    held_at_cutoff: np.ndarray
    segment: np.ndarray
    segment_names: tuple[str, ...]
    meta: dict
    #: float32 [C, P]: the after-purchase daily hazard at the cutoff (before affinity, tier fit and
    #: eligibility); ``None`` in truth files written before the simulator planted it
    after_hazard: np.ndarray | None = None

    @property
    def cutoff(self) -> datetime:
        return datetime.fromisoformat(self.meta["cutoff"])

    def customer_index(self, customer_id: str) -> int:
        index = int(customer_id[1:])
        if not (0 <= index < len(self.customer_ids)) or self.customer_ids[index] != customer_id:
            raise KeyError(f"unknown customer_id {customer_id!r}")
        return index

    def propensity_of(self, customer_id: str, product_id: str) -> float:
        return float(self.propensity[self.customer_index(customer_id), self.product_ids.index(product_id)])

    def save(self, path: Path) -> tuple[Path, Path]:
        """Write ``path`` (.npz) and the readable sidecar ``path`` with ``.json``; byte-stable."""
        path = Path(path)
        arrays = {
            "customer_ids": self.customer_ids.astype("U10"),
            "product_ids": np.array(self.product_ids, dtype="U48"),
            "propensity": self.propensity.astype(np.float32),
            "holdout_pairs": self.holdout_pairs.astype(np.int32).reshape(-1, 2),
            "holdout_day": self.holdout_day.astype(np.int16),
            "held_at_cutoff": self.held_at_cutoff.astype(bool),
            "segment": self.segment.astype(np.int8),
            "segment_names": np.array(self.segment_names, dtype="U32"),
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
        }
        if self.after_hazard is not None:
            arrays["after_hazard"] = self.after_hazard.astype(np.float32)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, value in arrays.items():
                info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w", force_zip64=True) as handle:
                    np.lib.format.write_array(handle, np.asarray(value), allow_pickle=False)
        sidecar = path.with_suffix(".json")
        sidecar.write_text(
            json.dumps(
                {"meta": self.meta, "product_ids": list(self.product_ids), "segment_names": list(self.segment_names),
                 "arrays": {k: [list(v.shape), str(v.dtype)] for k, v in arrays.items()}, "npz": path.name},
                indent=2, sort_keys=True, ensure_ascii=False,
            ) + "\n",
            encoding="utf-8",
        )
        return path, sidecar


def truth_path_for(events_path: Path) -> Path:
    """``events.jsonl`` -> ``events.truth.npz`` (the sidecar is ``events.truth.json``)."""
    events_path = Path(events_path)
    stem = events_path.name[: -len(events_path.suffix)] if events_path.suffix else events_path.name
    return events_path.with_name(stem + ".truth.npz")


def load_truth(path: Path) -> Truth:
    """Read a truth file written by ``Truth.save`` (accepts the .npz or the .json sidecar path)."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".npz")
    with np.load(path, allow_pickle=False) as data:
        return Truth(
            customer_ids=data["customer_ids"],
            product_ids=tuple(str(p) for p in data["product_ids"]),
            propensity=data["propensity"],
            holdout_pairs=data["holdout_pairs"],
            holdout_day=data["holdout_day"],
            held_at_cutoff=data["held_at_cutoff"],
            segment=data["segment"],
            segment_names=tuple(str(s) for s in data["segment_names"]),
            meta=json.loads(data["meta"].item()),
            after_hazard=data["after_hazard"] if "after_hazard" in data.files else None,
        )


# --------------------------------------------------------------------------------------------
# Event batches and serialisation
# --------------------------------------------------------------------------------------------


@dataclass
class EventBatch:
    """Events in output order: ``records`` (the wire bytes of ``schemas.codec``, no newline), with
    the type code (index into ``TYPE_NAMES``) and customer index of each; ``lines`` is the same
    as text."""

    records: list[bytes]
    types: np.ndarray
    customers: np.ndarray

    def __len__(self) -> int:
        return len(self.records)

    @property
    def lines(self) -> list[str]:
        return [record.decode("utf-8") for record in self.records]


def _cust_ids(idx: np.ndarray) -> list[str]:
    return [f"C{i:09d}" for i in idx.tolist()]


def _rounded(values: np.ndarray) -> list[float]:
    return (np.round(values, 2) + 0.0).tolist()  # + 0.0: no negative zero on the wire


def _names(table: Sequence[str], codes: np.ndarray) -> list[str]:
    return np.asarray(table, dtype=object)[np.asarray(codes, dtype=np.int64)].tolist()


class _Lines:
    """Collects per-type column arrays for one block of events, then orders and encodes them."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, np.ndarray, np.ndarray, dict]] = []

    def add(self, type_code: int, cust: np.ndarray, at_s: np.ndarray, **cols: np.ndarray) -> None:
        if len(cust):
            self.parts.append((type_code, cust.astype(np.int64), at_s.astype(np.int64), cols))

    def build(self, id_prefix: str, first_seq: int, order_key: str = "time") -> EventBatch:
        if not self.parts:
            return EventBatch([], np.zeros(0, np.int8), np.zeros(0, np.int64))
        types = np.concatenate([np.full(len(c), t, np.int8) for t, c, _, _ in self.parts])
        cust = np.concatenate([c for _, c, _, _ in self.parts])
        at = np.concatenate([a for _, _, a, _ in self.parts])
        within = np.concatenate([np.arange(len(c)) for _, c, _, _ in self.parts])
        if order_key == "time":
            order = np.lexsort((within, types, cust, at))
        else:  # per customer, then time: the backdated history
            order = np.lexsort((within, types, at, cust))
        position = np.empty(len(order), np.int64)
        position[order] = np.arange(len(order))
        seq = first_seq + position
        records: list[bytes] = [b""] * len(order)
        start = 0
        for type_code, c, a, cols in self.parts:
            n = len(c)
            envelope = {"event_id": [f"{id_prefix}{s:010d}" for s in seq[start:start + n].tolist()],
                        "customer_id": _cust_ids(c), "occurred_at": a.tolist()}
            event_type, fields = _COLUMNS[type_code](cols)
            for p, record in zip(position[start:start + n].tolist(), encode_columns(event_type, envelope | fields)):
                records[p] = record
            start += n
        return EventBatch(records, types[order], cust[order])


def _profile_columns(cols):  # type: ignore[no-untyped-def]
    return CustomerProfileUpdated, {
        "source": "kyc", "birth_year": cols["birth_year"].tolist(), "risk_tolerance": cols["risk"].tolist(),
        "employment": _names(_EMPLOYMENTS, cols["employment"]), "city_tier": cols["city_tier"].tolist()}


def _deposit_columns(cols):  # type: ignore[no-untyped-def]
    return DepositPosted, {
        "source": "core_banking", "kind": _names(_DEP_KINDS, cols["kind"]), "amount_minor": cols["amount"].tolist(),
        "currency": "CNY", "channel": _names(_DEP_CHANNELS, cols["channel"]),
        "purpose": _names(_DEP_PURPOSES, cols["purpose"]), "branch_id": [b or None for b in cols["branch"]],
        "balance_after_minor": cols["balance"].tolist()}


def _hotline_columns(cols):  # type: ignore[no-untyped-def]
    return HotlineCallEnded, {
        "source": "cti", "intent": _names(_HOTLINE_INTENTS, cols["intent"]), "duration_s": cols["duration"].tolist(),
        "resolved": [bool(r) for r in cols["resolved"].tolist()], "sentiment": _rounded(cols["sentiment"])}


def _pos_columns(cols):  # type: ignore[no-untyped-def]
    category = cols["category"].tolist()
    return CardPaymentMade, {
        "source": "card_switch", "card_token": list(cols["token"]),
        "mcc": [_POS_MCCS[k][v] for k, v in zip(category, cols["mcc_variant"].tolist())],
        "merchant_category": _names(_POS_CATEGORIES, cols["category"]), "hotel_stars": cols["stars"].tolist(),
        "luxury": [bool(x) for x in cols["luxury"].tolist()], "amount_minor": cols["amount"].tolist(),
        "currency": "CNY", "online": [bool(x) for x in cols["online"].tolist()],
        "country": _names(_COUNTRIES, cols["country"])}


def _purchase_columns(cols):  # type: ignore[no-untyped-def]
    channel = cols["channel"].tolist()
    return ProductPurchased, {
        "source": [_PURCHASE_SOURCE[ch] for ch in channel], "product_id": _names(cols["product_names"], cols["product"]),
        "amount_minor": cols["amount"].tolist(), "currency": "CNY", "channel": _names(_PURCHASE_CHANNELS, channel),
        "decision_id": None}


_COUNTRIES = ("CN", *_FOREIGN)
#: Type code -> (the event's columns for ``schemas.codec.encode_columns``).
_COLUMNS: dict[int, Callable] = {
    T_PROFILE: _profile_columns, T_DEPOSIT: _deposit_columns, T_HOTLINE: _hotline_columns, T_POS: _pos_columns,
    T_PURCHASE: _purchase_columns,
}


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


def _rng(seed: int, *path: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *path])))


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a row-stochastic matrix."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def _tier_index(balance_minor: np.ndarray) -> np.ndarray:
    floors = np.array([f for _, f in VALUE_TIER_FLOORS_MINOR[1:]], dtype=np.int64)
    return np.searchsorted(floors, balance_minor, side="right")


class Simulator:
    """The simulated bank. ``run()`` yields event batches day by day; afterwards ``truth()``
    runs the holdout window and returns the ground truth. Deterministic for (seed, customers,
    start, catalog)."""

    def __init__(self, catalog: Catalog, customers: int, seed: int, start: datetime = DEFAULT_START) -> None:
        if customers < 1 or customers > 999_999_999:
            raise ValueError("customers must be in [1, 999999999]")
        if seed < 0:
            raise ValueError("seed must be >= 0")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.catalog = catalog
        self.n = customers
        self.seed = seed
        self.start = start.astimezone(timezone.utc).replace(microsecond=0)
        self.start_s = int(self.start.timestamp())
        self.id_prefix = f"s{seed}-{self.start_s}-"
        self.seq = 0
        self.day = 0
        self.events_by_type = [0] * len(TYPE_NAMES)
        self._appeal_changes: list[tuple[int, int, float]] = []  # (from_day, product index, factor)
        self._setup_products()
        self._draw_customers()

    # ---- products -------------------------------------------------------------------------
    def _setup_products(self) -> None:
        cat = self.catalog
        P = len(cat)
        self.P = P
        self.product_names = list(cat.ids)
        fams = sorted({p.family for p in cat.products})
        self.families = fams
        self.family_idx = np.array([fams.index(p.family) for p in cat.products])
        hold = np.zeros((len(SEGMENTS), P))
        for j, p in enumerate(cat.products):
            hold[:, j] = _HOLD_P.get(p.product_id, (_FAMILY_HOLD_P[p.family],) * len(SEGMENTS))
        self.hold_p = hold
        self.seg_gate = hold > 0
        self.min_assets = np.array([p.min_assets_minor for p in cat.products], dtype=np.int64)
        self.min_age = np.array([p.min_age for p in cat.products])
        self.max_age = np.array([p.max_age for p in cat.products])
        self.risk_level = np.array([p.risk_level for p in cat.products])
        self.multi = np.array([p.multi_hold for p in cat.products])
        self.tier_fit = np.array([[t in p.value_tiers for p in cat.products] for t in VALUE_TIERS])  # [tier, P]
        log_boost = np.zeros((P, P), dtype=np.float32)
        for key, targets in _CO_OWNERSHIP.items():
            if key in cat:
                for target, factor in targets.items():
                    if target in cat:
                        log_boost[cat.index[key], cat.index[target]] = np.log(factor)
        self.log_boost = log_boost
        after = np.zeros((P, P), dtype=np.float32)
        for key, targets in _AFTER_PURCHASE.items():
            if key in cat:
                for target, rate in targets.items():
                    if target in cat:
                        after[cat.index[key], cat.index[target]] = rate
        self.after_rate = after  # [key, target] daily hazard added right after buying the key
        self.after_first_card = np.array([pid in _AFTER_PURCHASE_FIRST_CARD for pid in cat.ids])
        self.after_fade = np.float32(0.5 ** (1.0 / _AFTER_PURCHASE_HALF_LIFE_DAYS))  # per day
        conv = np.zeros((len(NEEDS), P), dtype=np.float32)
        for k, need in enumerate(NEEDS):
            for pid, rate in _NEED_CONVERSION[need].items():
                if pid in cat:
                    conv[k, cat.index[pid]] = rate
        self.fulfils = conv >= _NEED_FULFILLED_AT  # [K, P]
        self.conversion = conv * np.float32(_NEED_CONVERSION_SCALE)
        self.repeat_rate = np.array([_REPEAT_RATE_BY_FAMILY.get(p.family, 0.0) if p.multi_hold else 0.0
                                     for p in cat.products], dtype=np.float32)
        if "card_instalment" in cat:
            self.requires_card = np.array([pid in _REQUIRES_CREDIT_CARD for pid in cat.ids])
        else:
            self.requires_card = np.zeros(P, bool)
        self.is_credit_card = np.array([p.family == "credit_card" and p.product_id not in _REQUIRES_CREDIT_CARD
                                        for p in cat.products])
        self.is_card = self.is_credit_card | np.array([pid == "debit_card" for pid in cat.ids])
        self.idx = {pid: cat.index.get(pid, -1) for pid in
                    ("demand_deposit", "payroll_service", "pension_service", "mortgage", "consumer_loan", "car_loan",
                     "mobile_banking", "utility_autopay", "debit_card", "home_equity_loan", "small_business_loan")}

    # ---- customers ------------------------------------------------------------------------
    def _draw_customers(self) -> None:
        rng = _rng(self.seed, 0)
        n, P = self.n, self.P
        seg = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARE).astype(np.int8)
        self.segment = seg
        lo, hi = _AGE_RANGE[seg, 0], _AGE_RANGE[seg, 1]
        self.age = (lo + np.floor(rng.random(n) * (hi - lo + 1))).astype(np.int16)
        self.birth_year = (self.start.year - self.age).astype(np.int32)
        assets_cny = _ASSETS_MEDIAN_CNY[seg] * np.exp(rng.standard_normal(n) * _ASSETS_SIGMA[seg])
        self.balance = np.clip(np.round(assets_cny * 100), 10_000, 5_000_000_000).astype(np.int64)
        self.income_minor = np.round(_INCOME_MEDIAN_CNY[seg] * np.exp(rng.standard_normal(n) * 0.4) * 100).astype(np.int64)
        self.risk = (_categorical(rng, _RISK_P[seg]) + 1).astype(np.int8)
        self.employment = _categorical(rng, _EMPLOYMENT_P[seg]).astype(np.int8)
        self.city_tier = (_categorical(rng, _CITY_TIER_P[seg]) + 1).astype(np.int8)
        self.payday = rng.choice(np.array([5, 10, 15, 20, 25]), size=n).astype(np.int8)
        self.branch = rng.integers(0, 2_000, size=n).astype(np.int32)
        self.affinity = np.exp(rng.standard_normal((n, len(self.families))) * _AFFINITY_SIGMA
                               - _AFFINITY_SIGMA**2 / 2).astype(np.float32)
        if "service" in self.families:  # everyday services follow segment, not taste
            self.affinity[:, self.families.index("service")] = 1.0
        mix = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B1) + np.uint64(self.seed * 7919)) % np.uint64(16**10)
        self.card_hex = [f"{v:010x}" for v in mix.tolist()]
        self.opened_s = (self.start_s - DAY_S * (30 + np.floor(rng.random(n) * 365 * 12))
                         - np.floor(rng.random(n) * DAY_S)).astype(np.int64)
        self.opened_s = np.maximum(self.opened_s, int(datetime(2001, 1, 1, tzinfo=timezone.utc).timestamp()))

        # Initial holdings: in an order where keys of co-ownership come before their targets.
        held = np.zeros((n, P), dtype=bool)
        static_ok = self._static_eligibility(np.arange(n))
        order = _holding_order(self.catalog)
        log_co = np.zeros((n, P), dtype=np.float32)
        for j in order:
            p = self.hold_p[seg, j] * self.affinity[:, self.family_idx[j]] * np.exp(log_co[:, j])
            p *= static_ok[:, j] & (self.balance >= self.min_assets[j])
            if self.requires_card[j]:
                p *= held[:, self.is_credit_card].any(axis=1)
            take = rng.random(n) < np.minimum(p, 0.97)
            held[:, j] = take
            if self.log_boost[j].any():
                log_co[take] += self.log_boost[j]
        if self.idx["demand_deposit"] >= 0:
            held[:, self.idx["demand_deposit"]] = True
        self.held = held
        self.log_co = (held.astype(np.float32) @ self.log_boost).astype(np.float32)
        self.co_boost = np.exp(self.log_co)  # [n, P] co-ownership multiplier, kept in step with log_co
        self.affinity_p = np.ascontiguousarray(self.affinity[:, self.family_idx])  # [n, P]
        self.static_ok = static_ok
        # Hidden needs.
        # Needs already open on the first day (near the steady state), not shown yet.
        K = len(NEEDS)
        self.need_active = rng.random((n, K), dtype=np.float32) < _NEED_START[seg] * _INITIAL_NEED_DAYS
        self.need_shown = np.zeros((n, K), dtype=bool)
        self.complaint_until = np.full(n, -1, dtype=np.int32)
        # After-purchase hazard [n, P] at the current day (faded daily); rows with a kick listed.
        self.after = np.zeros((n, P), dtype=np.float32)
        self.after_rows = np.zeros(0, dtype=np.int64)

    def _static_eligibility(self, rows: np.ndarray) -> np.ndarray:
        age = self.age[rows, None]
        ok = (age >= self.min_age) & (age <= self.max_age) & (self.risk[rows, None] >= self.risk_level)
        return ok & self.seg_gate[self.segment[rows]]

    # ---- drift ----------------------------------------------------------------------------
    def scale_appeal(self, product_id: str, factor: float, from_day: int) -> None:
        """Plant a drift: from simulated day ``from_day`` on (0 = the first day), every customer's
        daily hazard of ``product_id`` is multiplied by ``factor`` (0.5 halves its appeal, 2 doubles
        it), so its own purchases and its true propensity follow, and so is the chance that an offer
        of it is accepted (``simulator.visits.answer_offers``: the offer's accept probability
        without the drift, times the factor). Changes to one product multiply.

        Why both: the true propensity is 1 - exp(-14 h) for a daily hazard h, so scaling only the
        hazard of a product customers already want barely moves the acceptance of its offers
        (x0.74 for a halved consumer loan); a drift in what customers think of a product shows
        in how they answer its offers first."""
        if product_id not in self.catalog:
            raise ValueError(f"unknown product_id {product_id!r}")
        if not factor >= 0 or from_day < 0:
            raise ValueError("factor must be >= 0 and from_day >= 0")
        self._appeal_changes.append((int(from_day), self.catalog.index[product_id], float(factor)))

    def appeal_at(self, day: int) -> np.ndarray:
        """Per product, the appeal multiplier in force on ``day`` (float32 [P], 1 without drift)."""
        appeal = np.ones(self.P, dtype=np.float32)
        for from_day, j, factor in self._appeal_changes:
            if day >= from_day:
                appeal[j] *= np.float32(factor)
        return appeal

    def propensity(self, rows: np.ndarray, window_days: int = DEFAULT_HOLDOUT_DAYS, drift: bool = True) -> np.ndarray:
        """The true propensity now, float64 [len(rows), P]: the chance to buy within
        ``window_days`` if nothing changed (as ``Truth.propensity``, from the current state);
        ``drift=False``: as if no drift had been planted."""
        return -np.expm1(-self.hazard(rows, drift=drift).astype(np.float64) * window_days)

    def record_purchases(self, customers: np.ndarray, products: np.ndarray) -> None:
        """Apply purchases made outside the daily draw (an accepted offer) to the state: the
        product is held from now on, co-ownership and needs follow, and its after-purchase kick
        starts with the next day. Indices: customer rows, catalog product indices."""
        self._apply_purchases(np.asarray(customers, dtype=np.int64), np.asarray(products, dtype=np.int64))

    def purchase_amounts(self, customers: np.ndarray, products: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Amounts (int64 minor units) of purchases of ``products`` by ``customers``, drawn as the
        daily purchases' are (investments from the balance, loan principals, 0 for cards and services)."""
        return self._purchase_amount(rng, np.asarray(customers, dtype=np.int64), np.asarray(products, dtype=np.int64))

    # ---- hazards --------------------------------------------------------------------------
    def hazard(self, rows: np.ndarray, after_scale: float = 1.0, drift: bool = True) -> np.ndarray:
        """Daily purchase hazard [len(rows), P] from the current state (float32). The fading
        after-purchase part is multiplied by ``after_scale`` (the truth uses it to average that
        part over the holdout window); ``drift=False`` leaves out the planted drift."""
        seg = self.segment[rows]
        held = self.held[rows]
        bal = self.balance[rows]
        organic = (self.hold_p[seg] * _ORGANIC_RATE).astype(np.float32)
        weight = self.need_active[rows] * (_NEED_HIDDEN_WEIGHT + (1 - _NEED_HIDDEN_WEIGHT) * self.need_shown[rows])
        fresh = (organic + weight.astype(np.float32) @ self.conversion) * self.co_boost[rows]
        # Co-ownership raises first purchases; a held multi-hold product is bought again at its
        # repeat rate (rollovers, new instalments).
        h = np.where(held, self.repeat_rate, fresh)
        if self.after_rows.size:
            h += self.after[rows] * np.float32(after_scale)
        h *= self.affinity_p[rows]
        if drift and self._appeal_changes:
            h *= self.appeal_at(self.day)
        fit = self.tier_fit[_tier_index(bal)]
        h *= np.where(fit, np.float32(1.0), np.float32(_OFF_TIER_FACTOR))
        ok = self.static_ok[rows] & (bal[:, None] >= self.min_assets) & (~held | self.multi)
        if self.requires_card.any():
            has_card = held[:, self.is_credit_card].any(axis=1)
            ok &= ~self.requires_card | has_card[:, None]
        h *= ok
        damp = np.where(self.complaint_until[rows] >= self.day, np.float32(_COMPLAINT_DAMP), np.float32(1.0))
        h *= damp[:, None]
        return np.minimum(h, np.float32(_MAX_DAILY_HAZARD)).astype(np.float32)

    # ---- history --------------------------------------------------------------------------
    def history(self) -> Iterator[EventBatch]:
        """The backdated history, in blocks of customers: per customer the profile, the
        account opening, then one purchase per held product, ascending in time."""
        for block, lo in enumerate(range(0, self.n, _HISTORY_BLOCK)):
            rows = np.arange(lo, min(lo + _HISTORY_BLOCK, self.n))
            batch = self._history_block(rows, _rng(self.seed, 1, block))
            self._count(batch)
            yield batch

    def _history_block(self, rows: np.ndarray, rng: np.random.Generator) -> EventBatch:
        n = len(rows)
        out = _Lines()
        opened = self.opened_s[rows]
        out.add(T_PROFILE, rows, opened, birth_year=self.birth_year[rows], risk=self.risk[rows],
                employment=self.employment[rows], city_tier=self.city_tier[rows])
        branch = np.array([f"BR{b:04d}" for b in self.branch[rows].tolist()], dtype=object)
        out.add(T_DEPOSIT, rows, opened + 60, kind=np.zeros(n, np.int8), amount=self.balance[rows],
                channel=np.zeros(n, np.int8), purpose=np.full(n, 7, np.int8), branch=branch,
                balance=self.balance[rows])
        c, j = np.nonzero(self.held[rows])
        c = rows[c]
        span = (self.start_s - DAY_S - self.opened_s[c] - 120).clip(min=1)
        at = self.opened_s[c] + 120 + np.floor(rng.random(len(c)) * span).astype(np.int64)
        dd = j == self.idx["demand_deposit"]
        at[dd] = self.opened_s[c[dd]] + 30
        channel = self._purchase_channel(rng, c, j)
        amount = self._purchase_amount(rng, c, j)
        out.add(T_PURCHASE, c, at, product=j, amount=amount, channel=channel, product_names=self.product_names)
        return out.build(self.id_prefix, self.seq, order_key="customer")

    def _purchase_channel(self, rng: np.random.Generator, c: np.ndarray, j: np.ndarray) -> np.ndarray:
        seg = self.segment[c]
        mobile_p = np.array([0.45, 0.80, 0.55, 0.25, 0.45, 0.10, 0.08])[seg]
        has_app = self.held[c, self.idx["mobile_banking"]] if self.idx["mobile_banking"] >= 0 else np.ones(len(c), bool)
        u = rng.random(len(c))
        ch = np.where((u < mobile_p) & has_app, 2, 0)
        ch = np.where((u >= mobile_p) & (u < mobile_p + 0.05), 1, ch)
        fam = np.array(self.families)[self.family_idx[j]]
        rm = (seg == SEGMENTS.index("high_net_worth")) & np.isin(fam, ("wealth", "insurance", "cd", "fund")) & (u > 0.3)
        return np.where(rm, 4, ch).astype(np.int8)

    def _purchase_amount(self, rng: np.random.Generator, c: np.ndarray, j: np.ndarray) -> np.ndarray:
        fam = np.array(self.families)[self.family_idx[j]]
        bal = self.balance[c].astype(np.float64)
        u = rng.random(len(c))
        amount = np.zeros(len(c))
        invest = np.isin(fam, ("deposit", "time_deposit", "cd", "wealth", "fund", "gold"))
        amount[invest] = np.maximum(bal[invest] * (0.1 + 0.5 * u[invest]), self.min_assets[j[invest]])
        ins = fam == "insurance"
        amount[ins] = self.income_minor[c[ins]] * (0.5 + 2 * u[ins])
        loan = fam == "loan"
        principal_cny = {"mortgage": 1_000_000, "home_equity_loan": 600_000, "car_loan": 150_000,
                         "consumer_loan": 50_000, "small_business_loan": 500_000, "agri_loan": 50_000}
        for pid, cny in principal_cny.items():
            k = self.catalog.index.get(pid, -1)
            sel = loan & (j == k)
            amount[sel] = cny * 100 * np.exp(rng.standard_normal(sel.sum()) * 0.5)
        other_loan = loan & (amount == 0)
        amount[other_loan] = 100_000 * 100 * (0.5 + u[other_loan])
        sip = np.array(self.product_names, dtype=object)[j] == "fund_sip"
        amount[sip] = np.round((500 + 4500 * u[sip]) / 100) * 100 * 100
        amount[fam == "service"] = 0
        amount[fam == "credit_card"] = 0
        inst = np.array(self.product_names, dtype=object)[j] == "card_instalment"
        amount[inst] = np.round(3000 + 20000 * u[inst]) * 100
        amount = np.where(amount > 0, np.maximum(np.round(amount / 100) * 100, 100), 0)
        return np.minimum(amount, 10_000_000_000).astype(np.int64)

    # ---- days -----------------------------------------------------------------------------
    def step(self, emit: bool = True) -> tuple[EventBatch, np.ndarray]:
        """Simulate one day. Returns the day's events (empty when ``emit`` is false) and the
        purchases as (customer_idx, product_idx) pairs."""
        d = self.day
        rng = _rng(self.seed, 2, d)
        n = self.n
        day_s = self.start_s + d * DAY_S
        date = (self.start + timedelta(days=d)).date()
        out = _Lines()
        dep: list[tuple] = []  # (cust, at, kind, amount, channel, purpose, branch_or_None)

        # Needs: lapse, start, show.
        lapse = self.need_active & (rng.random(self.need_active.shape, dtype=np.float32) < _NEED_END_P)
        self.need_active &= ~lapse
        self.need_shown &= self.need_active
        start_p = _NEED_START[self.segment].copy()
        if self.idx["mortgage"] >= 0:
            has_mortgage = self.held[:, self.idx["mortgage"]]
            start_p[:, NEEDS.index("house")] *= ~has_mortgage
            start_p[:, NEEDS.index("home_equity")] *= np.where(has_mortgage, 3.0, 0.3)
        started = ~self.need_active & (rng.random(start_p.shape, dtype=np.float32) < start_p)
        self.need_active |= started
        show = self.need_active & ~self.need_shown & (rng.random(started.shape, dtype=np.float32) < _NEED_SHOW_P)
        repeat = self.need_shown & (rng.random(started.shape, dtype=np.float32) < _NEED_REPEAT_P)
        self.need_shown |= show
        signal = show | repeat

        # Windfall: a large inflow shows the need.
        w = NEEDS.index("windfall")
        wc = np.nonzero(show[:, w])[0]
        if len(wc):
            amount = np.maximum(self.balance[wc] * (0.3 + 1.2 * rng.random(len(wc))), 5_000_000)
            amount = np.round(np.minimum(amount, 2_000_000_000) / 100).astype(np.int64) * 100
            at = day_s + 9 * 3600 + np.floor(rng.random(len(wc)) * 8 * 3600).astype(np.int64)
            dep.append((wc, at, np.zeros(len(wc)), amount, np.full(len(wc), 3), np.full(len(wc), 3), None))

        # Hotline: need inquiries, background calls, complaints.
        h_cust, h_intent = [], []
        for k, intent in enumerate(_NEED_INTENT):
            if intent is None:
                continue
            ck = np.nonzero(signal[:, k])[0]
            if NEEDS[k] == "invest":
                code = np.where(rng.random(len(ck)) < 0.5, _HOTLINE_INTENTS.index("wealth_inquiry"),
                                _HOTLINE_INTENTS.index("fund_inquiry"))
            else:
                code = np.full(len(ck), _HOTLINE_INTENTS.index(intent))
            h_cust.append(ck)
            h_intent.append(code)
        calls = np.nonzero(rng.random(n) < _HOTLINE_RATE[self.segment])[0]
        h_cust.append(calls)
        h_intent.append(rng.choice(len(_HOTLINE_INTENTS), size=len(calls), p=_BACKGROUND_INTENT_P))
        newc = np.nonzero((rng.random(n) < _COMPLAINT_RATE) & (self.complaint_until < d))[0]
        self.complaint_until[newc] = d + 5 + rng.integers(0, 15, size=len(newc))
        closing = np.nonzero(self.complaint_until == d)[0]
        closing = closing[~np.isin(closing, newc)]
        complaint_code = _HOTLINE_INTENTS.index("complaint")
        h_cust += [newc, closing]
        h_intent += [np.full(len(newc), complaint_code), np.full(len(closing), complaint_code)]
        hc = np.concatenate(h_cust).astype(np.int64)
        hi = np.concatenate(h_intent).astype(np.int64)
        n_new_start = len(hc) - len(newc) - len(closing)
        is_open = np.zeros(len(hc), bool)
        is_open[n_new_start:n_new_start + len(newc)] = True
        is_close = np.zeros(len(hc), bool)
        is_close[n_new_start + len(newc):] = True

        # Purchases, from the state at the start of the day.
        buy_c, buy_j = [], []
        for b, lo in enumerate(range(0, n, _CHUNK)):
            rows = np.arange(lo, min(lo + _CHUNK, n))
            h = self.hazard(rows)
            hit = _rng(self.seed, 3, d, b).random(h.shape, dtype=np.float32) < h
            c, j = np.nonzero(hit)
            buy_c.append(rows[c])
            buy_j.append(j)
        bc = np.concatenate(buy_c).astype(np.int64)
        bj = np.concatenate(buy_j).astype(np.int64)
        pairs = np.stack([bc, bj], axis=1) if len(bc) else np.zeros((0, 2), np.int64)

        if emit:
            self._emit_hotline(out, rng, day_s, hc, hi, is_open, is_close)
            self._emit_pos(out, rng, day_s, signal[:, NEEDS.index("travel")] | (
                self.need_shown[:, NEEDS.index("travel")] & (rng.random(n) < 0.15)))
            self._regular_deposits(rng, d, date.day, day_s, dep)
            at = day_s + np.where(rng.random(len(bc)) < 0.5, 8 * 3600, 9 * 3600) + np.floor(
                rng.random(len(bc)) * 12 * 3600).astype(np.int64)
            out.add(T_PURCHASE, bc, at, product=bj, amount=self._purchase_amount(rng, bc, bj),
                    channel=self._purchase_channel(rng, bc, bj), product_names=self.product_names)
            self._emit_deposits(out, dep)
        else:
            for c, _, kind, amount, *_ in dep:
                signed = np.where(kind == 0, amount, -amount).astype(np.int64)
                np.add.at(self.balance, c, signed)

        # Apply purchases to the state.
        self._fade_after()
        self._apply_purchases(bc, bj)

        batch = out.build(self.id_prefix, self.seq) if emit else EventBatch([], np.zeros(0, np.int8), np.zeros(0))
        self._count(batch)
        self.day += 1
        return batch, pairs

    def _apply_purchases(self, bc: np.ndarray, bj: np.ndarray) -> None:
        if not len(bc):
            return
        self._kick_after(bc, bj)
        newly = ~self.held[bc, bj]
        self.held[bc, bj] = True
        nb = bc[newly]
        if len(nb):
            np.add.at(self.log_co, nb, self.log_boost[bj[newly]])
            touched = np.unique(nb)
            self.co_boost[touched] = np.exp(self.log_co[touched])
        met = self.fulfils[:, bj].T  # [purchases, K]
        for k in range(len(NEEDS)):
            self.need_active[bc[met[:, k]], k] = False
        self.need_shown &= self.need_active

    def _fade_after(self) -> None:
        if self.after_rows.size:
            rows = self.after_rows
            faded = self.after[rows] * self.after_fade
            faded[faded < 1e-6] = 0.0
            self.after[rows] = faded
            self.after_rows = rows[faded.any(axis=1)]

    def _kick_after(self, bc: np.ndarray, bj: np.ndarray) -> None:
        """Today's purchases (before they are applied to ``held``) raise tomorrow's hazards."""
        keys = self.after_rate[bj].any(axis=1)
        if not keys.any():
            return
        c, j = bc[keys], bj[keys]
        first = self.after_first_card[j]
        if first.any():
            had_card = self.held[c][:, self.is_credit_card].any(axis=1)
            keep = ~(first & had_card)
            c, j = c[keep], j[keep]
        if len(c):
            np.add.at(self.after, c, self.after_rate[j])
            self.after_rows = np.union1d(self.after_rows, c)

    def _count(self, batch: EventBatch) -> None:
        self.seq += len(batch)
        for t, count in enumerate(np.bincount(batch.types.astype(np.int64), minlength=len(TYPE_NAMES)).tolist()):
            self.events_by_type[t] += count

    def _emit_hotline(self, out: _Lines, rng: np.random.Generator, day_s: int, hc: np.ndarray, hi: np.ndarray,
                      is_open: np.ndarray, is_close: np.ndarray) -> None:
        m = len(hc)
        at = day_s + 8 * 3600 + np.floor(rng.random(m) * 13 * 3600).astype(np.int64)
        duration = np.round(_INTENT_DURATION_S[hi] * np.exp(rng.standard_normal(m) * 0.5)).astype(np.int64)
        duration = np.clip(duration, 20, 7200)
        sentiment = np.clip(0.3 + 0.25 * rng.standard_normal(m), -1, 1)
        resolved = rng.random(m) < 0.85
        complaint = hi == _HOTLINE_INTENTS.index("complaint")
        sentiment[complaint] = -0.3 - 0.6 * rng.random(complaint.sum())
        resolved[complaint] = False
        sentiment[is_close] = -0.2 + 0.6 * rng.random(is_close.sum())
        resolved[is_close] = True
        # A background complaint (not a tracked one) is a one-off call, resolved on the phone.
        resolved[complaint & ~is_open & ~is_close] = True
        out.add(T_HOTLINE, hc, at, intent=hi, duration=duration, resolved=resolved, sentiment=sentiment)

    def _emit_pos(self, out: _Lines, rng: np.random.Generator, day_s: int, travelling: np.ndarray) -> None:
        n = self.n
        has_card = self.held[:, self.is_card].any(axis=1)
        counts = rng.poisson(_POS_RATE[self.segment]) * has_card
        cust = np.repeat(np.arange(n), counts)
        # Travel need: extra travel or hotel payments, a share abroad.
        tc = np.nonzero(travelling & has_card)[0]
        m_regular = len(cust)
        cust = np.concatenate([cust, tc])
        m = len(cust)
        wealth_z = (np.log10(self.balance[cust] / 100.0) - 4.7) / 1.0
        logits = np.log(_POS_WEIGHT)[None, :] + wealth_z[:, None] * _POS_WEALTH_ELASTICITY[None, :]
        probs = np.exp(logits)
        category = _categorical(rng, probs)
        category[m_regular:] = np.where(rng.random(m - m_regular) < 0.5, _CAT_TRAVEL, _CAT_HOTEL)
        stars = np.clip(np.round(2.3 + 1.0 * wealth_z + 0.7 * rng.standard_normal(m)), 1, 5).astype(np.int64)
        stars = np.where(category == _CAT_HOTEL, stars, 0)
        luxury = (category == _CAT_LUXURY) | (stars == 5)
        base = _POS_AMOUNT_CNY[category] * np.where(category == _CAT_HOTEL, stars**1.5, 1.0)
        amount = base * np.exp(0.3 * wealth_z + 0.6 * rng.standard_normal(m))
        amount_minor = np.clip(np.round(amount * 100), 100, 500_000_000).astype(np.int64)
        online = rng.random(m) < _POS_ONLINE_P[category]
        travelish = np.isin(category, (_CAT_TRAVEL, _CAT_HOTEL, _CAT_LUXURY))
        abroad_p = np.minimum(0.04 * np.exp(wealth_z), 0.5)
        abroad_p[m_regular:] = 0.3
        abroad = travelish & (rng.random(m) < abroad_p)
        country = np.where(abroad, 1 + rng.integers(0, len(_FOREIGN), size=m), 0)
        variant = np.floor(rng.random(m) * np.array([len(v) for v in _POS_MCCS])[category]).astype(np.int64)
        has_credit = self.held[cust][:, self.is_credit_card].any(axis=1)
        credit = has_credit & (rng.random(m) < 0.6)
        token = [f"tok_{'c' if c else 'd'}{self.card_hex[i]}" for c, i in zip(credit.tolist(), cust.tolist())]
        hour = np.where(rng.random(m) < 0.5, 11, 17) + np.floor(rng.random(m) * 5).astype(np.int64)
        at = day_s + hour * 3600 + np.floor(rng.random(m) * 3600).astype(np.int64)
        out.add(T_POS, cust, at, token=token, category=category, mcc_variant=variant, stars=stars, luxury=luxury,
                amount=amount_minor, online=online, country=country)

    def _regular_deposits(self, rng: np.random.Generator, d: int, day_of_month: int, day_s: int, dep: list) -> None:
        n = self.n
        seg = self.segment
        ip = self.idx
        def at_hours(count: int, first: int, span: int) -> np.ndarray:
            return day_s + first * 3600 + np.floor(rng.random(count) * span * 3600).astype(np.int64)
        if ip["payroll_service"] >= 0:
            c = np.nonzero(self.held[:, ip["payroll_service"]] & (self.payday == day_of_month))[0]
            amt = np.round(self.income_minor[c] * (0.95 + 0.15 * rng.random(len(c))) / 100).astype(np.int64) * 100
            dep.append((c, at_hours(len(c), 2, 4), np.zeros(len(c)), amt, np.full(len(c), 3), np.zeros(len(c)), None))
        if ip["pension_service"] >= 0 and day_of_month == 15:
            c = np.nonzero(self.held[:, ip["pension_service"]])[0]
            amt = np.round(self.income_minor[c] * np.where(seg[c] == SEGMENTS.index("retiree"), 1.0, 0.3) / 100
                           ).astype(np.int64) * 100
            dep.append((c, at_hours(len(c), 1, 3), np.zeros(len(c)), amt, np.full(len(c), 3), np.ones(len(c)), None))
        # Loan repayments on the 20th.
        if day_of_month == 20:
            for pid, share in (("mortgage", 0.35), ("consumer_loan", 0.1), ("car_loan", 0.15)):
                if ip[pid] >= 0:
                    c = np.nonzero(self.held[:, ip[pid]])[0]
                    amt = np.round(self.income_minor[c] * share / 100).astype(np.int64) * 100
                    dep.append((c, at_hours(len(c), 6, 2), np.ones(len(c)), amt, np.full(len(c), 3),
                                np.full(len(c), 5), None))
        # ATM cash withdrawals.
        c = np.nonzero(rng.random(n) < _ATM_RATE[seg])[0]
        amt = (1 + np.floor(rng.exponential(8, size=len(c)))).astype(np.int64) * 10_000
        dep.append((c, at_hours(len(c), 7, 15), np.ones(len(c)), amt, np.ones(len(c)), np.full(len(c), 2), "branch"))
        # Counter deposits and withdrawals.
        c = np.nonzero(rng.random(n) < _COUNTER_RATE[seg])[0]
        kind = (rng.random(len(c)) < 0.5).astype(np.int64)
        amt = np.round(5000 * np.exp(rng.standard_normal(len(c)))).astype(np.int64) * 100
        dep.append((c, at_hours(len(c), 9, 8), kind, amt, np.zeros(len(c)), np.full(len(c), 2), "branch"))
        # Mobile transfers and bill payments (app users), business receipts for owners.
        app = self.held[:, ip["mobile_banking"]] if ip["mobile_banking"] >= 0 else np.ones(n, bool)
        c = np.nonzero((rng.random(n) < _MOBILE_TXN_RATE[seg]) & app)[0]
        u = rng.random(len(c))
        business = seg[c] == SEGMENTS.index("small_business")
        kind = np.where(business & (u < 0.5), 0, 1)
        purpose = np.where(u < 0.25, 4, 3)
        purpose = np.where(business, 3, purpose)
        amt = np.round(np.where(business, self.income_minor[c] / 100 / 6, 800) * np.exp(
            0.8 * rng.standard_normal(len(c)))).astype(np.int64) * 100
        dep.append((c, at_hours(len(c), 8, 15), kind, amt, np.full(len(c), 2), purpose, None))

    def _emit_deposits(self, out: _Lines, dep: list) -> None:
        if not dep:
            return
        cust = np.concatenate([x[0] for x in dep]).astype(np.int64)
        at = np.concatenate([x[1] for x in dep]).astype(np.int64)
        kind = np.concatenate([x[2] for x in dep]).astype(np.int64)
        amount = np.concatenate([x[3] for x in dep]).astype(np.int64)
        channel = np.concatenate([x[4] for x in dep]).astype(np.int64)
        purpose = np.concatenate([x[5] for x in dep]).astype(np.int64)
        at_branch = np.concatenate([np.full(len(x[0]), x[6] == "branch") for x in dep])
        order = np.lexsort((np.arange(len(cust)), at, cust))
        cust, at, kind, amount, channel, purpose, at_branch = (
            a[order] for a in (cust, at, kind, amount, channel, purpose, at_branch))
        # Withdrawals never take more than a third of the opening balance of the day each, and
        # at most _MAX_WITHDRAWALS_PER_DAY per customer, so balances never go negative.
        start_balance = self.balance[cust]
        withdrawal = kind == 1
        rank = _rank_within(cust, withdrawal)
        keep = ~withdrawal | (rank < _MAX_WITHDRAWALS_PER_DAY)
        amount = np.where(withdrawal, np.minimum(amount, start_balance // 3 // 100 * 100), amount)
        keep &= amount >= 100
        cust, at, kind, amount, channel, purpose, at_branch = (
            a[keep] for a in (cust, at, kind, amount, channel, purpose, at_branch))
        signed = np.where(kind == 0, amount, -amount)
        running = np.cumsum(signed)
        first = np.ones(len(cust), bool)
        first[1:] = cust[1:] != cust[:-1]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(cust)), 0))
        before = np.concatenate([[0], running[:-1]])
        balance_after = self.balance[cust] + running - before[group_start]
        last = np.ones(len(cust), bool)
        last[:-1] = cust[1:] != cust[:-1]
        self.balance[cust[last]] = balance_after[last]
        branch = np.where(at_branch, np.array([f"BR{b:04d}" for b in self.branch[cust].tolist()], dtype=object), None)
        out.add(T_DEPOSIT, cust, at, kind=kind, amount=amount, channel=channel, purpose=purpose,
                branch=branch, balance=balance_after)

    # ---- runs -----------------------------------------------------------------------------
    def run(self, days: int, progress: Callable[[int, int, int], None] | None = None) -> Iterator[EventBatch]:
        """Yield the history, then one batch per simulated day. ``progress(day, days, events)``."""
        if self.day != 0 or self.seq != 0:
            raise RuntimeError("run() starts a fresh simulator only")
        for batch in self.history():
            if progress:
                progress(0, days, self.seq)
            yield batch
        for _ in range(days):
            batch, _pairs = self.step(emit=True)
            if progress:
                progress(self.day, days, self.seq)
            yield batch
        self.days = days

    def truth(self, holdout_days: int = DEFAULT_HOLDOUT_DAYS) -> Truth:
        """Propensities at the cutoff (now), then run the holdout window for the labels."""
        days = self.day
        cutoff = self.start + timedelta(days=days)
        held_at_cutoff = self.held.copy()
        propensity = np.empty((self.n, self.P), dtype=np.float32)
        # The after-purchase part fades over the holdout: its mean over the window's days.
        fades = self.after_fade ** np.arange(holdout_days, dtype=np.float64)
        after_scale = float(fades.mean()) if holdout_days else 1.0
        after_at_cutoff = self.after.copy()
        for lo in range(0, self.n, _CHUNK):
            rows = np.arange(lo, min(lo + _CHUNK, self.n))
            propensity[rows] = -np.expm1(-self.hazard(rows, after_scale).astype(np.float64) * holdout_days)
        pairs, pair_day = [], []
        for h in range(holdout_days):
            _, p = self.step(emit=False)
            pairs.append(p)
            pair_day.append(np.full(len(p), h, np.int16))
        holdout = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
        meta = {
            "seed": self.seed, "customers": self.n, "days": days, "holdout_days": holdout_days,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "cutoff": cutoff.isoformat().replace("+00:00", "Z"),
            "catalog_hash": self.catalog.content_hash(),
            "events": int(sum(self.events_by_type)),
            "events_by_type": dict(zip(TYPE_NAMES, self.events_by_type)),
            "holdout_purchases": int(len(holdout)),
            "customer_id_format": "C{index:09d}",
            "after_purchase": {k: dict(v) for k, v in _AFTER_PURCHASE.items()},
            "after_purchase_half_life_days": _AFTER_PURCHASE_HALF_LIFE_DAYS,
            "after_purchase_first_card": list(_AFTER_PURCHASE_FIRST_CARD),
            "customers_with_after_purchase_boost": int((after_at_cutoff > 0).any(axis=1).sum()),
        }
        return Truth(
            customer_ids=np.array([f"C{i:09d}" for i in range(self.n)], dtype="U10"),
            product_ids=tuple(self.product_names),
            propensity=propensity,
            holdout_pairs=holdout.astype(np.int32).reshape(-1, 2),
            holdout_day=np.concatenate(pair_day) if pair_day else np.zeros(0, np.int16),
            held_at_cutoff=held_at_cutoff,
            segment=self.segment.copy(),
            segment_names=SEGMENTS,
            meta=meta,
            after_hazard=after_at_cutoff,
        )


def _rank_within(cust: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """For rows sorted by customer: the 0-based count of earlier ``mask`` rows of the same customer."""
    csum = np.cumsum(mask) - mask
    first = np.ones(len(cust), bool)
    first[1:] = cust[1:] != cust[:-1]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(cust)), 0))
    return csum - csum[group_start]


def _holding_order(catalog: Catalog) -> list[int]:
    """Product indices with every co-ownership key before its targets (keys first, stable)."""
    keys = [catalog.index[k] for k in _CO_OWNERSHIP if k in catalog]
    seen = set(keys)
    rest = [j for j in range(len(catalog)) if j not in seen]
    # Order keys so a key that is also a target comes after the key pointing at it.
    order: list[int] = []
    pending = list(keys)
    while pending:
        for j in pending:
            pid = catalog.ids[j]
            blockers = [k for k in pending if k != j and pid in _CO_OWNERSHIP.get(catalog.ids[k], {})]
            if not blockers:
                order.append(j)
                pending.remove(j)
                break
        else:  # a cycle: take the rest as listed
            order += pending
            break
    return order + rest


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    """``records``: every event's wire bytes in output order; ``lines`` the same as text."""

    records: list[bytes]
    types: np.ndarray
    customers: np.ndarray
    truth: Truth
    events_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return [record.decode("utf-8") for record in self.records]

    def encoded(self) -> list[bytes]:
        return self.records


def simulate(
    catalog: Catalog,
    customers: int,
    days: int,
    seed: int,
    start: datetime = DEFAULT_START,
    holdout_days: int = DEFAULT_HOLDOUT_DAYS,
) -> SimulationResult:
    """Run the simulator in memory (fine up to ~100k customers) and return events and truth."""
    sim = Simulator(catalog, customers, seed, start)
    records: list[bytes] = []
    types, custs = [], []
    for batch in sim.run(days):
        records += batch.records
        types.append(batch.types)
        custs.append(batch.customers)
    truth = sim.truth(holdout_days)
    return SimulationResult(records, np.concatenate(types), np.concatenate(custs), truth,
                            dict(zip(TYPE_NAMES, sim.events_by_type)))


class ProgressBar:
    """A one-line progress bar on stderr (days done, events, events/s); on a non-terminal
    stream only the final line is written."""

    def __init__(self, stream=sys.stderr, enabled: bool = True) -> None:  # type: ignore[no-untyped-def]
        self.stream = stream
        self.enabled = enabled
        self.live = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, day: int, days: int, events: int) -> None:
        done = day >= days
        if not self.enabled or not (self.live or done):
            return
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        bar = int(30 * day / max(days, 1))
        self.stream.write(f"{chr(13) if self.live else ''}simulate [{'#' * bar}{'.' * (30 - bar)}] day {day}/{days} "
                          f"{events:,} events {events / elapsed:,.0f}/s")
        if done:
            self.stream.write("\n")
        self.stream.flush()


@dataclass
class WriteSummary:
    events: int
    events_by_type: dict[str, int]
    events_path: Path | None
    truth_path: Path | None
    elapsed_s: float


def write_jsonl(
    out: Path | None,
    catalog: Catalog,
    customers: int,
    days: int,
    seed: int,
    start: datetime = DEFAULT_START,
    holdout_days: int = DEFAULT_HOLDOUT_DAYS,
    truth_path: Path | None = None,
    progress: bool = True,
    on_batch: Callable[[EventBatch], None] | None = None,
) -> WriteSummary:
    """Simulate and write the events to ``out`` (JSONL, UTF-8, one event a line) and the truth
    to ``truth_path`` (default ``truth_path_for(out)``). ``on_batch`` sees every batch (e.g. to
    publish it or validate it). ``out=None`` writes no events file."""
    t0 = time.perf_counter()
    sim = Simulator(catalog, customers, seed, start)
    bar = ProgressBar(enabled=progress)
    handle = open(out, "wb") if out is not None else None
    try:
        for batch in sim.run(days, progress=bar):
            if on_batch is not None:
                on_batch(batch)
            if handle is not None and batch.records:
                handle.write(b"\n".join(batch.records) + b"\n")
    finally:
        if handle is not None:
            handle.close()
    truth_target = truth_path or (truth_path_for(out) if out is not None else None)
    if truth_target is not None:
        sim.truth(holdout_days).save(truth_target)
    return WriteSummary(sim.seq, dict(zip(TYPE_NAMES, sim.events_by_type)), out, truth_target,
                        time.perf_counter() - t0)


def simulate_events(
    catalog: Catalog,
    customers: int,
    days: int,
    seed: int,
    start: datetime = DEFAULT_START,
) -> Iterator[Event]:
    """The simulated events as validated ``schemas.events`` models, in output order (history
    first, then day by day). For demos and tests; ``write_jsonl`` is the fast path."""
    sim = Simulator(catalog, customers, seed, start)
    for batch in sim.run(days):
        for record in batch.records:
            yield decode(record)


def truth_arrays(truth: Truth) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """(customer_ids [C], product_ids [P], propensity float32 [C, P], holdout pairs int32 [N, 2]
    of (customer_idx, product_idx), segment int8 [C])."""
    return truth.customer_ids, truth.product_ids, truth.propensity, truth.holdout_pairs, truth.segment


def segment_names() -> Sequence[str]:
    return SEGMENTS
