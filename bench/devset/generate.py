"""Generate the routing development set (bench/devset/devset.jsonl) from hand-written parts.

    python bench/devset/generate.py            # rewrites devset.jsonl (deterministic: seed 13)

Every prompt part below was written for this set (no data set text is copied). A task template carries its
label and rubric rule (RUBRIC.md) with a one-line reason, so the label follows the task, whatever system
prompt, knowledge base or pasted context surrounds it. Output lines:
``{"id", "surface", "label": "simple"|"complex", "rule", "reason", "split": "train"|"test", "body"}`` where
``body`` is an OpenAI chat completions request body.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("devset.jsonl")
PER_SURFACE = 56

# --------------------------------------------------------------------------------------------------
# support bot: long system prompt with a knowledge base

COMPANIES = [
    ("Larkspur Home", "furniture and home goods", "sofa", "dining table", "bookshelf"),
    ("Voltic", "consumer electronics", "laptop", "noise-cancelling headphones", "smartwatch"),
    ("Parcelo", "shipping software (SaaS)", "Pro plan", "Team plan", "label printer"),
    ("Greenleaf Pantry", "grocery delivery", "weekly box", "family box", "spice kit"),
]

KB_ARTICLES = [
    "## Returns\nItems can be returned within {ret} days of delivery for a full refund to the original payment "
    "method. Items must be unused and in their original packaging. Clearance items are final sale. Large items "
    "(over 30 kg) are collected by our courier for a ${pickup} pickup fee, waived if the item arrived damaged. "
    "Refunds are issued within 5 business days after the item reaches our warehouse.",
    "## Shipping\nStandard shipping takes {ship} business days and is free on orders over ${free}. Express "
    "shipping (1-2 business days) costs ${express}. We ship to the United States, Canada and the United Kingdom. "
    "Orders placed before 2 pm Eastern ship the same day. PO boxes are supported for standard shipping only.",
    "## Warranty\nAll products carry a {warranty}-month limited warranty against manufacturing defects. The "
    "warranty does not cover accidental damage, water damage or normal wear. Batteries are covered for 12 months "
    "or until capacity falls below 80%, whichever comes first. Warranty claims need the order number and a photo.",
    "## Payments\nWe accept Visa, Mastercard, American Express, PayPal and gift cards. Klarna instalments are "
    "available on orders between $100 and $2,000. Store credit never expires. Price adjustments are honoured "
    "once, within 14 days of purchase, if the same item drops in price on our site.",
    "## Accounts\nTo reset a password, use 'Forgot password' on the sign-in page; the link is valid for 30 "
    "minutes. Two-factor authentication can be enabled under Settings > Security. Accounts inactive for 24 months "
    "are closed after an email notice. Email changes require confirming both the old and the new address.",
    "## Subscriptions\nThe Basic plan costs ${basic}/month, Pro ${pro}/month and Team ${team}/month per seat. "
    "Annual billing saves {annual}%. Upgrades take effect immediately and are prorated by day; downgrades take "
    "effect at the next renewal. Cancelled annual plans are refunded pro rata minus a {fee}% early-termination "
    "fee, only within the first 90 days.",
    "## Damaged or missing items\nReport damaged or missing items within 7 days of delivery with photos. We "
    "send a replacement at no cost or refund the item, as the customer prefers. If a replacement is out of "
    "stock, we refund and add a 10% store-credit goodwill gesture.",
    "## Loyalty programme\nMembers earn 1 point per dollar; 100 points are worth $5. Points expire 12 months "
    "after they are earned. Gold members (over 2,000 points a year) get free express shipping and a 60-day "
    "return window instead of the standard one.",
]

SUPPORT_STYLE = (
    "You are {bot}, the customer support assistant of {company}, a retailer of {what}. Answer only from the "
    "knowledge base below. If the answer is not in it, say you will hand the conversation to a human agent. "
    "Be warm and concise: at most 4 sentences unless the customer asks for detail. Never invent order data, "
    "never promise exceptions to policy, never ask for full card numbers. Use the customer's first name if "
    "known. Format prices with a dollar sign and two decimals. If the customer is upset, acknowledge it once "
    "and move to the solution.\n\n# Knowledge base (last updated {date})\n\n{kb}\n\n# Escalation\nHand over "
    "to a human for: legal threats, chargebacks, injuries, requests for compensation beyond policy, and any "
    "question about an order you cannot see.")

SUPPORT_SIMPLE = [
    ("S1", "return window is stated in the knowledge base", "How many days do I have to return a {p1}?"),
    ("S1", "shipping countries are listed in the KB", "Hi! Do you ship to {country}?"),
    ("S1", "password reset steps are in the KB", "I forgot my password, how do I reset it? The link I got earlier doesn't work anymore."),
    ("S1", "plan prices are in the KB", "What does the Pro plan cost per month?"),
    ("S1", "accepted payment methods are listed", "Can I pay with {pay}?"),
    ("S1", "free-shipping threshold is in the KB", "How much do I need to spend to get free shipping?"),
    ("S1", "warranty length is stated", "How long is the warranty on the {p2}?"),
    ("S1", "points value is stated in the KB", "How much are 300 loyalty points worth?"),
    ("S1", "damaged-item procedure is in the KB", "My {p1} arrived scratched. What do I need to send you?"),
    ("S1", "2FA location is in the KB", "Where do I turn on two-factor authentication?"),
    ("S7", "acknowledgement, no task", "ok thanks, that's all I needed :)"),
    ("S1", "express shipping cost is stated", "How much is express shipping and how fast is it?"),
]

SUPPORT_COMPLEX = [
    ("C1", "combines return window, loyalty tier and dates to decide eligibility",
     "I'm a Gold member. My {p1} was delivered {d1} days ago and I've used it twice. It's not on clearance. Can I "
     "still return it, would I pay the pickup fee since it weighs 42 kg, and when would I see the money?"),
    ("C1", "prorated refund with early-termination fee needs multi-step arithmetic",
     "I paid for the Pro plan annually {d2} days ago and want to cancel now. Work out exactly how much I get back, "
     "showing the numbers."),
    ("C1", "mid-cycle upgrade proration across seats needs arithmetic over several rules",
     "We're on Team with {n} seats billed monthly; halfway through the month we want to add {m} seats and move "
     "two people to Basic. What will next invoice and this month's extra charge be?"),
    ("C2", "price-adjustment rule vs. clearance exception vs. store credit conflict needs judgement",
     "I bought the {p2} 10 days ago for ${price}; it's now on clearance at ${price2}. I already got a price "
     "adjustment on another order last month. Also I paid partly with store credit. What am I entitled to, and "
     "would returning it and re-buying be allowed?"),
    ("C2", "battery warranty rule with two conditions and wear exclusion needs weighing",
     "My {p2} is 14 months old, battery health shows 78%, and the case is a bit cracked from a drop last year. "
     "Is any of this covered, and what would you recommend I do?"),
    ("C5", "chargeback threat plus injury claim: sensitive, must not over-promise",
     "Your {p1} collapsed and my son hurt his wrist. I want a full refund plus compensation for the doctor bill "
     "today or I'm disputing the charge with my bank and posting everywhere. What are you going to do?"),
    ("C1", "out-of-stock replacement path with goodwill credit and points expiry combined",
     "Two items from my order #{order} arrived broken: the {p1} (${price}) and the {p3} (${price2}). The {p1} "
     "replacement is out of stock. I have 450 points that expire next week. Explain all my options and the total "
     "value of each."),
    ("C2", "policy gap: question not covered in KB, decide whether to escalate and what to say",
     "I moved to {country2} after ordering and the parcel is stuck at customs asking for import duties. Who pays, "
     "and can you reroute it to my old address in Canada instead?"),
]


def support(rng: random.Random, i: int) -> tuple[dict, str, str, str]:
    company, what, p1, p2, p3 = rng.choice(COMPANIES)
    vals = dict(ret=rng.choice([14, 30, 45]), pickup=rng.choice([29, 39, 49]), ship=rng.choice(["3-5", "4-7", "2-4"]),
                free=rng.choice([50, 75, 99]), express=rng.choice([12, 15, 19]), warranty=rng.choice([12, 24]),
                basic=rng.choice([9, 12]), pro=rng.choice([29, 39, 49]), team=rng.choice([19, 25]),
                annual=rng.choice([15, 20]), fee=rng.choice([10, 15]))
    arts = rng.sample(KB_ARTICLES, rng.randint(5, len(KB_ARTICLES)))
    kb = "\n\n".join(a.format(**vals) for a in arts)
    system = SUPPORT_STYLE.format(bot=rng.choice(["Robin", "Ava", "Sam", "Juno"]), company=company, what=what,
                                  date=f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}", kb=kb)
    simple = rng.random() < 0.55
    rule, reason, tmpl = rng.choice(SUPPORT_SIMPLE if simple else SUPPORT_COMPLEX)
    ask = tmpl.format(p1=p1, p2=p2, p3=p3, country=rng.choice(["Canada", "the UK", "Mexico", "Germany"]),
                      country2=rng.choice(["Mexico", "Germany", "Australia"]), pay=rng.choice(["PayPal", "Klarna", "Apple Pay", "a gift card"]),
                      d1=rng.choice([40, 52, 58]), d2=rng.choice([35, 61, 80]), n=rng.choice([8, 12, 20]),
                      m=rng.choice([3, 5]), price=rng.choice([249, 399, 1199]), price2=rng.choice([179, 299, 899]),
                      order=rng.randint(10000, 99999))
    msgs = [{"role": "system", "content": system}]
    if rng.random() < 0.4:
        msgs += [{"role": "user", "content": rng.choice(["hi", "Hello, I need some help", "hey there"])},
                 {"role": "assistant", "content": "Hi! I'm happy to help. What can I do for you today?"}]
    msgs.append({"role": "user", "content": ask})
    return {"model": "auto", "messages": msgs, "user": f"cust-{rng.randint(1000, 9999)}"}, ("simple" if simple else "complex"), rule, reason


# --------------------------------------------------------------------------------------------------
# code assistant

CODE_SYSTEM = (
    "You are an expert pair programmer embedded in the {ide} editor. The user works in a {lang} repository "
    "({repo}). Follow the repository's conventions: {conv}. When you change code, show a unified diff or the "
    "full function, never partial snippets with ellipses. Explain briefly why. Do not add dependencies without "
    "saying so. If a request is ambiguous, state your assumption in one line and proceed. Prefer standard "
    "library solutions. Security: never print secrets, never disable TLS verification, validate input at trust "
    "boundaries. Tests use {test}. The CI runs the linter ({lint}) and fails on warnings. The open file is "
    "shown below with the cursor's function marked.\n\n--- open file: {path} ---\n{code}\n--- end of file ---")

PY_FILES = [
    ("app/billing.py", '''import decimal
from dataclasses import dataclass
from typing import Iterable

TAX_RATES = {"US-CA": decimal.Decimal("0.0725"), "US-NY": decimal.Decimal("0.04"), "GB": decimal.Decimal("0.20")}


@dataclass
class LineItem:
    sku: str
    qty: int
    unit_price: decimal.Decimal


def subtotal(items):
    total = decimal.Decimal(0)
    for it in items:
        total += it.unit_price * it.qty
    return total


def tax(items: Iterable[LineItem], region: str) -> decimal.Decimal:  # <- cursor
    rate = TAX_RATES.get(region, decimal.Decimal(0))
    return (subtotal(items) * rate).quantize(decimal.Decimal("0.01"))


def invoice_lines(items):
    out = []
    for it in items:
        out.append(f"{it.sku:10} x{it.qty:3} {it.unit_price:>8}")
    return out
'''),
    ("worker/queue.py", '''import asyncio
import logging

log = logging.getLogger(__name__)


class JobQueue:
    def __init__(self, concurrency: int = 4):
        self._q: asyncio.Queue = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._running = 0
        self.concurrency = concurrency

    async def submit(self, job):
        await self._q.put(job)

    async def _worker(self):  # <- cursor
        while True:
            job = await self._q.get()
            async with self._lock:
                self._running += 1
                try:
                    await job.run()
                except Exception:
                    log.exception("job failed")
                finally:
                    self._running -= 1
            self._q.task_done()

    async def start(self):
        for _ in range(self.concurrency):
            asyncio.create_task(self._worker())
'''),
    ("src/users/service.py", '''from .repo import UserRepo
from .events import publish


class UserService:
    def __init__(self, repo: UserRepo, cache):
        self.repo = repo
        self.cache = cache

    def get(self, uid):  # <- cursor
        u = self.cache.get(uid)
        if u is None:
            u = self.repo.load(uid)
            self.cache.set(uid, u, ttl=300)
        return u

    def rename(self, uid, name):
        u = self.repo.load(uid)
        u.name = name
        self.repo.save(u)
        publish("user.renamed", uid=uid, name=name)
'''),
]
TS_FILES = [
    ("web/src/hooks/useSearch.ts", '''import { useEffect, useState } from "react";

export function useSearch(query: string) {  // <- cursor
  const [results, setResults] = useState<string[]>([]);
  const [loading, setLoading] = useState(false);
  useEffect(() => {
    setLoading(true);
    fetch(`/api/search?q=${query}`)
      .then((r) => r.json())
      .then((data) => { setResults(data.items); setLoading(false); });
  }, [query]);
  return { results, loading };
}
'''),
    ("server/routes/orders.ts", '''import { Router } from "express";
import { db } from "../db";

export const orders = Router();

orders.get("/:id", async (req, res) => {  // <- cursor
  const row = await db.query("SELECT * FROM orders WHERE id = " + req.params.id);
  if (!row) return res.status(404).send("not found")
  res.json(row);
});
'''),
]

CODE_SIMPLE = [
    ("S5", "docstring for a short, visible function", "Add a docstring to the function at the cursor."),
    ("S5", "type hints on a visible function", "Add type hints to the function at the cursor, nothing else."),
    ("S5", "explain a short visible snippet", "What does the function at the cursor do? One paragraph."),
    ("S5", "mechanical rename", "Rename the function at the cursor to something clearer and update its call sites in this file."),
    ("S5", "syntax error pointed at by the message", "The linter says: 'missing semicolon' on the line with `return res.status(404)`. Fix it."),
    ("S2", "convert loop to comprehension, mechanical", "Rewrite the loop in invoice_lines / the first loop you see as a comprehension (or map), same behaviour."),
    ("S5", "add a log line", "Add a debug log line at the start of the function at the cursor with its arguments."),
    ("S5", "write a trivial unit test for a pure function", "Write one {test} test for the function at the cursor with a happy-path input."),
    ("S3", "summarise the file", "Give me a 3-bullet summary of this file for the PR description."),
]
CODE_COMPLEX = [
    ("C3", "concurrency bug: lock serialises workers, needs reasoning about async semantics",
     "Throughput doesn't increase when I raise concurrency, and sometimes shutdown hangs. What's wrong with this design and how would you fix it without losing the running count?"),
    ("C3", "security + correctness: injection and missing error path, needs a careful rewrite",
     "Review the function at the cursor for security and correctness problems and rewrite it properly, including error handling and the race when the query changes quickly."),
    ("C3", "cache invalidation bug across methods needs reasoning",
     "Users sometimes see their old name for up to five minutes after renaming, and in one case the new name was lost entirely under concurrent renames. Explain every cause and propose a fix that keeps the cache."),
    ("C3", "design a new component with constraints",
     "Design a retry-with-backoff wrapper for the code at the cursor that is idempotency-safe, bounded in total time, and testable without real sleeps. Give the code and the tests."),
    ("C3", "performance with algorithmic constraints",
     "This runs on 2 million line items per invoice batch and takes 40 minutes. Profile mentally where time goes and restructure it to be near-linear and memory-bounded, keeping exact decimal results."),
    ("C3", "flaky test diagnosis",
     "The test for the function at the cursor passes locally but fails about 1 in 20 runs in CI with a stale value. Give the likely causes in order of probability and how to prove each one."),
    ("C3", "cross-module refactor",
     "Split this module so billing rules per region can be plugged in by other teams without editing this file, keep backwards compatibility for existing callers, and explain the migration."),
]


def code(rng, i):
    lang = rng.choice(["python", "typescript"])
    path, src = rng.choice(PY_FILES if lang == "python" else TS_FILES)
    conv = rng.choice(["black formatting, 100-column lines, Google docstrings",
                       "prettier defaults, named exports only, no default exports",
                       "functional core / imperative shell; no global state"])
    system = CODE_SYSTEM.format(ide=rng.choice(["VS Code", "JetBrains", "Zed"]), lang=lang,
                                repo=rng.choice(["a monorepo of 40 services", "an e-commerce backend", "an internal dashboard"]),
                                conv=conv, test="pytest" if lang == "python" else "vitest",
                                lint="ruff" if lang == "python" else "eslint", path=path, code=src)
    simple = rng.random() < 0.55
    rule, reason, tmpl = rng.choice(CODE_SIMPLE if simple else CODE_COMPLEX)
    ask = tmpl.format(test="pytest" if lang == "python" else "vitest")
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": ask}]
    body = {"model": "auto", "messages": msgs, "temperature": rng.choice([0, 0.2])}
    if rng.random() < 0.4:
        body["stream"] = True
    return body, ("simple" if simple else "complex"), rule, reason


# --------------------------------------------------------------------------------------------------
# email drafts

EMAIL_SYSTEM = (
    "You are the writing assistant inside {product}, an email client for professionals. You draft and edit "
    "emails for the signed-in user, {name}, {role} at {org}. Match the user's tone: {tone}. Keep drafts short "
    "unless asked. Never invent facts, dates, prices or commitments that are not in the thread or the user's "
    "request; leave [placeholders] instead. Sign as {first}. Output only the email body, no subject line unless "
    "asked. The user's signature block and the thread so far follow.\n\nSignature:\n{name}\n{role}, {org}\n\n"
    "Thread:\n{thread}")

THREADS = [
    "From: Priya Natarajan\nSubject: Q3 planning sync\n\nHi {first}, could we meet Tuesday at 3pm or Wednesday "
    "at 10am to go through the Q3 plan? I'll bring the draft budget. Thanks, Priya",
    "From: Marco Bellini (Acme Logistics)\nSubject: Renewal\n\nHello {first}, our contract renews on 1 December. "
    "Given the service outages in August (three incidents, 11 hours in total), we expect a 25% discount on the "
    "renewal and a credit for August, otherwise we will go to tender. Our SLA says 99.9% monthly uptime with "
    "10% credit per 0.1% below. Regards, Marco",
    "From: Hannah Cho\nSubject: Thank you!\n\nThanks so much for the talk at the meetup yesterday, the slides "
    "were great. Would you be open to sharing them? Best, Hannah",
    "From: Legal team\nSubject: Data request from former employee\n\n{first}, a former employee, Tom Reyes, "
    "has asked for all personal data we hold about him, including Slack messages mentioning him, within 30 days. "
    "Some of those messages discuss an ongoing internal investigation. Please draft our response to him.",
    "From: Leo Martin\nSubject: invoice 2231\n\nHi, we haven't received payment for invoice 2231 ($4,800, due "
    "Oct 15). Could you check? Thanks, Leo",
]

EMAIL_SIMPLE = [
    ("S4", "short confirmation with the facts given", "Reply accepting Tuesday at 3pm."),
    ("S4", "thank-you and share slides: routine", "Draft a friendly reply saying yes, I'll send the slides by Friday."),
    ("S3", "fix grammar of a given text", "Fix the grammar in my draft: 'hi leo, i checked with finance and they says the payment go out on monday, sorry for delay'"),
    ("S3", "shorten a given text", "Make my draft shorter and more polite: 'Hi Priya, I can't do Tuesday because I have another meeting that I cannot move and Wednesday at 10 would be much better for me if that works for you, let me know.'"),
    ("S3", "translate a short given text", "Translate this reply into {language}: 'Thank you for your message. I will get back to you by Friday.'"),
    ("S4", "routine acknowledgement", "Reply to Leo that I'm checking with finance and will update him tomorrow."),
    ("S3", "summarise the thread", "Summarise this thread in one sentence for my to-do list."),
]
EMAIL_COMPLEX = [
    ("C5", "contract negotiation: must compute SLA credit and hold a position without conceding",
     "Draft my reply to Marco. We can offer the SLA credit we actually owe (work it out from the outage hours) but not 25%; keep the renewal."),
    ("C5", "legal-sensitive data request with an investigation: what to disclose matters",
     "Draft the response to Tom. We must comply with the access request but not compromise the investigation."),
    ("C5", "delicate internal message: layoffs",
     "Draft an email to my team of 12 announcing that two roles are being eliminated next month, without naming them, and answering the questions they will obviously have."),
    ("C2", "weigh two meeting options against constraints",
     "I'm in Singapore next week (UTC+8) and Priya is in London. Pick whichever of her slots works for both of us during working hours and reply; if neither does, propose alternatives with the time zones worked out."),
    ("C5", "overdue invoice while disputing quality: tone and position",
     "Reply to Leo: we are withholding payment of 2231 because half the deliverables failed acceptance testing; be firm but keep the relationship, and propose a path to resolution."),
]


def email(rng, i):
    name = rng.choice(["Jordan Lee", "Amira Haddad", "Sofia Lindqvist", "Daniel Okafor"])
    first = name.split()[0]
    thread = "\n\n---\n\n".join(t.format(first=first) for t in rng.sample(THREADS, rng.randint(2, 4)))
    system = EMAIL_SYSTEM.format(product=rng.choice(["Quill Mail", "Inboxly"]), name=name, first=first,
                                 role=rng.choice(["Head of Operations", "Account Director", "Engineering Manager"]),
                                 org=rng.choice(["Brightwave", "Northpeak Analytics", "Tidal Systems"]),
                                 tone=rng.choice(["friendly and direct", "formal", "brief, no small talk"]), thread=thread)
    simple = rng.random() < 0.55
    rule, reason, tmpl = rng.choice(EMAIL_SIMPLE if simple else EMAIL_COMPLEX)
    ask = tmpl.format(language=rng.choice(["Spanish", "German", "French", "Japanese"]))
    # the thread the task refers to must be in the prompt: add the one it names if the sample missed it
    for key, t in (("Priya", THREADS[0]), ("Marco", THREADS[1]), ("slides", THREADS[2]), ("Tom", THREADS[3]),
                   ("Leo", THREADS[4])):
        if key in ask and t.format(first=first) not in system:
            system += "\n\n---\n\n" + t.format(first=first)
    return ({"model": "auto", "messages": [{"role": "system", "content": system}, {"role": "user", "content": ask}]},
            "simple" if simple else "complex", rule, reason)


# --------------------------------------------------------------------------------------------------
# search-result summaries

SEARCH_SYSTEM = (
    "You are the answer engine of {engine}. You receive the user's query and the top web results. Answer using "
    "only the results; cite them as [1], [2] ... after each claim. If the results do not answer the query, say "
    "so. Prefer recent sources. Keep answers under 150 words unless the user asks for more. Do not mention that "
    "you are an AI. Today's date is {date}.")

TOPICS = {
    "heat pumps": [
        "Energy Saving Hub (2025): Air-source heat pumps deliver 3 to 4 units of heat per unit of electricity in mild weather; efficiency drops below -15 C.",
        "Home Renovation Weekly (2023): Installation costs range from $8,000 to $16,000; a federal tax credit of 30% (up to $2,000) applies in the US.",
        "Cold Climate Study, Northern Univ. (2024): Modern cold-climate models kept a COP above 1.8 at -25 C in a two-winter field trial of 40 homes.",
        "Forum post (2021): my heat pump stopped working at -10, had to use the backup heater all January.",
        "Utility Co. FAQ (2025): Customers switching from oil heat saved $600-$1,200 a year on average; from natural gas, savings were small or negative at current prices.",
    ],
    "remote work productivity": [
        "Labor Review (2024): A randomized trial of 1,600 employees found hybrid work (2 days home) left productivity unchanged and cut quit rates by a third.",
        "Business Daily (2023): Several large firms reported lower output from fully remote teams and ordered returns to office.",
        "Survey Institute (2025): 62% of managers believe remote workers are less productive; 71% of workers say the opposite.",
        "Tech Blog (2022): Our fully remote startup shipped faster than ever, here's how.",
        "Economics Letters (2024): Fully remote call-centre workers were 8% less productive in the first year, mostly among new hires.",
    ],
    "intermittent fasting": [
        "Medical Journal (2024): In a 12-month trial, time-restricted eating (8-hour window) produced weight loss similar to daily calorie restriction.",
        "Health Magazine (2023): Intermittent fasting 'melts fat' and 'resets metabolism', say influencers.",
        "Nutrition Society (2025): Fasting regimens are not recommended for people with diabetes on insulin without medical supervision.",
        "Cohort Study abstract (2024): An observational link between 8-hour eating windows and cardiovascular deaths; authors caution it is preliminary and unreviewed.",
    ],
    "city library hours": [
        "Central Library website: Open Monday-Thursday 9:00-20:00, Friday 9:00-17:00, Saturday 10:00-16:00, closed Sunday.",
        "Local News (2025): The Central Library will close for renovation from 3 to 17 November.",
        "Maps listing: Central Library, 12 Elm Street, rated 4.6.",
        "Branch page: Eastside branch opens Sundays 12:00-16:00.",
    ],
}

SEARCH_SIMPLE = [
    ("S3", "summarise the given results", "Summarize these results in 3 bullet points."),
    ("S1", "a single fact stated in one result", "{fact_q}"),
    ("S2", "list sources with their years", "List each source and its year as a table."),
    ("S3", "one-sentence answer from results", "tl;dr?"),
]
FACT_Q = {
    "heat pumps": "How much is the US tax credit for a heat pump?",
    "remote work productivity": "How many employees were in the randomized trial?",
    "intermittent fasting": "How long was the weight-loss trial?",
    "city library hours": "What time does the Central Library close on Friday?",
}
SEARCH_COMPLEX = [
    ("C2", "results conflict; must weigh evidence quality",
     "The results disagree. Which claims are best supported, and which source should I trust least, and why?"),
    ("C1", "needs inference across several results plus arithmetic",
     "{inf_q}"),
    ("C7", "asks for a recommendation not stated in results",
     "Given all of this, what would you advise for my situation: {situation}? Be specific about the risks."),
]
INF_Q = {
    "heat pumps": "I heat with oil, the install would be $12,000 before the credit. How many years to break even, using the ranges given? Show the best and worst case.",
    "remote work productivity": "Reconcile the trial with the call-centre study: under what conditions does each finding apply, and what does that imply for a company hiring mostly juniors?",
    "intermittent fasting": "Someone quotes the cohort study as proof fasting is dangerous. Using the other results, explain what it can and cannot show.",
    "city library hours": "I want to study there every weekday evening from 6 to 8pm for the next three weeks starting 1 November. On which days can I actually do that? List them.",
}
SITUATIONS = ["I live in Minnesota and heat with gas", "I manage a team of 30 new graduates",
              "I am 55 and take insulin", "I'm a student with exams in mid-November"]


def search(rng, i):
    topic = rng.choice(list(TOPICS))
    results = TOPICS[topic][:]
    rng.shuffle(results)
    results_txt = "\n".join(f"[{k + 1}] {r}" for k, r in enumerate(results))
    system = SEARCH_SYSTEM.format(engine=rng.choice(["Findr", "Askwell", "Lumen Search"]),
                                  date=f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}")
    simple = rng.random() < 0.55
    rule, reason, tmpl = rng.choice(SEARCH_SIMPLE if simple else SEARCH_COMPLEX)
    ask = tmpl.format(fact_q=FACT_Q[topic], inf_q=INF_Q[topic], situation=rng.choice(SITUATIONS))
    user = f"Query: {topic}\n\nResults:\n{results_txt}\n\n{ask}" if rng.random() < 0.5 else None
    msgs = [{"role": "system", "content": system + ("" if user else f"\n\nResults for '{topic}':\n{results_txt}")},
            {"role": "user", "content": user or ask}]
    return {"model": "auto", "messages": msgs}, ("simple" if simple else "complex"), rule, reason


# --------------------------------------------------------------------------------------------------
# internal tools: extraction, formatting, classification

TOOLS_SYSTEM = (
    "You are a back-office automation service at {org}. You receive documents from internal tools and must "
    "follow the instruction exactly. Output only the requested artefact, no commentary, unless the instruction "
    "asks for an explanation. Dates are ISO 8601. Currency amounts are numbers with two decimals. If a field is "
    "missing, use null. Never guess identifiers.")

DOCS = [
    "INVOICE #INV-{n}\nDate: {d}\nBill to: Harbor Cafe LLC, 88 Pier Rd, Portland OR\nItems:\n  Espresso beans 5kg x4 @ 62.00 = 248.00\n  Oat milk 1L x24 @ 2.10 = 50.40\n  Paper cups 12oz x1000 @ 0.09 = 90.00\nSubtotal 388.40\nTax 31.07\nTotal 419.47\nDue in 30 days. Bank: Pacific Trust, acct ending 4417.",
    "name,email,phone,signup\nAna Ruiz,ana.ruiz@example.org,(503) 555-0142,03/04/2025\nBen Stone,ben@example.com,503.555.0199,2025-04-11\nChen Wei,CHEN.WEI@EXAMPLE.NET,+1 503 555 0100,11 Apr 2025\nDina Park,dina.park@example.org,5035550177,4/15/25",
    "Ticket 58813: 'Since this morning the export button gives a spinning wheel and then nothing. I need the monthly report for the board at 2pm!! Tried Chrome and Firefox.' Customer: Enterprise tier.",
    "Meeting notes 2026-10-02\nAttendees: K. Osei, M. Duarte, L. Fischer\n- Agreed to move launch to Nov 12\n- Marta to update pricing page by Oct 20\n- Open question: do we keep the free tier? Lukas to draft options\n- Budget for ads approved: $15k",
    "LEDGER A (bank)\n2026-09-01  -1,200.00  Rent\n2026-09-03  -89.99  SaaS Tools\n2026-09-05  +4,500.00  Client Alpha\n2026-09-09  -430.10  Travel\n2026-09-12  +2,250.00  Client Beta\nLEDGER B (books)\n2026-09-01  -1,200.00  Rent\n2026-09-03  -98.99  Software\n2026-09-05  +4,500.00  Alpha Corp\n2026-09-10  -430.10  Travel\n2026-09-12  +2,500.00  Client Beta\n2026-09-15  -75.00  Bank fees",
]

TOOLS_SIMPLE = [
    ("S2", "field extraction to JSON from a given invoice", "Extract invoice_number, date, total and due_days from the document below as JSON.\n\n{doc0}"),
    ("S2", "format conversion CSV -> Markdown", "Convert this CSV to a Markdown table.\n\n{doc1}"),
    ("S2", "normalise phone numbers and dates: mechanical", "Normalise the phone numbers to E.164 (US) and signup dates to ISO 8601. Return the CSV.\n\n{doc1}"),
    ("S2", "classify into given labels", "Classify the ticket into one of: billing, bug, feature_request, account. Also set priority low/normal/urgent. JSON only.\n\n{doc2}"),
    ("S2", "extract action items as a list", "List the action items with owner and due date as JSON.\n\n{doc3}"),
    ("S2", "pull all email addresses, lower-cased", "Return every email address in this text, lower-cased, one per line.\n\n{doc1}"),
]
TOOLS_COMPLEX = [
    ("C1", "reconciliation: match entries across ledgers, find and explain discrepancies",
     "Reconcile ledger A against ledger B. List every discrepancy, its likely cause, and the corrected balance.\n\n{doc4}"),
    ("C2", "fuzzy dedup with merge decisions and justification",
     "These customer records may contain duplicates with different spellings. Decide which to merge and justify each decision; flag the ones you're unsure about.\n\n{doc1}\nAnna Ruiz,a.ruiz@example.org,503-555-0142,2025-03-04\nBenjamin Stone,ben@example.com,,2025-04-12"),
    ("C1", "check invoice arithmetic and tax rate consistency",
     "Verify this invoice: are the line totals, subtotal and tax consistent? What tax rate was applied, is it plausible for Portland OR, and what should the total be if it isn't?\n\n{doc0}"),
    ("C7", "derive a robust parsing spec from messy examples",
     "Write a parsing spec (with edge cases and a regex per field) that would handle all the date and phone formats in this file, plus formats likely to appear next.\n\n{doc1}"),
]


def tools(rng, i):
    docs = {f"doc{k}": d.format(n=rng.randint(1000, 9999), d=f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}")
            for k, d in enumerate(DOCS)}
    system = TOOLS_SYSTEM.format(org=rng.choice(["Brightwave", "Tidal Systems", "Harbor Group"]))
    simple = rng.random() < 0.6
    rule, reason, tmpl = rng.choice(TOOLS_SIMPLE if simple else TOOLS_COMPLEX)
    body = {"model": "auto", "messages": [{"role": "system", "content": system},
                                          {"role": "user", "content": tmpl.format(**docs)}], "temperature": 0}
    if "JSON" in tmpl and rng.random() < 0.5:
        body["response_format"] = {"type": "json_object"}
    return body, ("simple" if simple else "complex"), rule, reason


# --------------------------------------------------------------------------------------------------
# analytics and SQL

SQL_SYSTEM = (
    "You are the SQL assistant of {tool}, connected to a {dialect} warehouse. Write one query per answer in a "
    "```sql block, then one sentence on what it returns. Use only the tables below; qualify columns; use CTEs "
    "for readability. Timestamps are UTC. Revenue is amount_cents / 100 in orders where status = 'paid'.\n\n"
    "Schema:\nCREATE TABLE customers (id BIGINT PRIMARY KEY, email TEXT, country TEXT, signup_at TIMESTAMP, "
    "channel TEXT);\nCREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT REFERENCES customers(id), "
    "created_at TIMESTAMP, status TEXT, amount_cents BIGINT);\nCREATE TABLE order_items (order_id BIGINT, "
    "product_id BIGINT, qty INT, price_cents BIGINT);\nCREATE TABLE products (id BIGINT, name TEXT, category "
    "TEXT);\nCREATE TABLE events (customer_id BIGINT, name TEXT, ts TIMESTAMP, props JSON);\n"
    "CREATE TABLE refunds (order_id BIGINT, amount_cents BIGINT, created_at TIMESTAMP);")

SQL_SIMPLE = [
    ("S5", "single-table count with a date filter", "How many orders were created last week?"),
    ("S5", "single-table group-by", "Number of customers per country, largest first."),
    ("S5", "single-table top-N", "Top 10 orders by amount in {month}."),
    ("S5", "explain a short given query", "What does this query do?\n\nSELECT country, COUNT(*) FROM customers WHERE signup_at >= '2026-01-01' GROUP BY 1 HAVING COUNT(*) > 100;"),
    ("S5", "add a filter to a given query", "Add a filter so this only counts paid orders:\n\nSELECT date_trunc('day', created_at) d, COUNT(*) FROM orders GROUP BY 1;"),
    ("S5", "rename columns / format a given query", "Format this query nicely and give the columns readable aliases:\nselect customer_id,sum(amount_cents) from orders where status='paid' group by customer_id"),
]
SQL_COMPLEX = [
    ("C4", "cohort retention with window functions", "Monthly retention by signup cohort and channel: share of each cohort that placed a paid order in month 1, 2 and 3 after signup."),
    ("C4", "fan-out trap: join multiplies revenue", "Our revenue by category query gives a total 30% above finance's number. Here it is:\n\nSELECT p.category, SUM(o.amount_cents)/100 FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id WHERE o.status = 'paid' GROUP BY 1;\n\nWhy, and what is the correct query?"),
    ("C4", "median inter-purchase time needs windows and percentiles", "Median days between a customer's first and second paid order, by acquisition channel, only for customers who signed up in 2025."),
    ("C4", "net revenue with partial refunds and time attribution choices", "Net revenue per month after refunds, where refunds count in the month of the original order, not the refund. Explain the edge cases."),
    ("C2", "metric definition disagreement needs judgement", "Marketing says active users grew 20% last quarter and product says 5%. Both use the events table. Hypothesise why, and write the queries that would settle it."),
    ("C4", "funnel with ordering constraints", "Funnel from 'viewed_product' to 'added_to_cart' to paid order within 7 days, per week, where steps must happen in order."),
]


def analytics(rng, i):
    system = SQL_SYSTEM.format(tool=rng.choice(["Querybird", "DataDesk", "Metricly"]),
                               dialect=rng.choice(["PostgreSQL", "Snowflake", "BigQuery"]))
    simple = rng.random() < 0.55
    rule, reason, tmpl = rng.choice(SQL_SIMPLE if simple else SQL_COMPLEX)
    ask = tmpl.format(month=rng.choice(["March 2026", "last month", "Q2"]))
    msgs = [{"role": "system", "content": system}]
    if rng.random() < 0.3:
        msgs += [{"role": "user", "content": "How many customers do we have?"},
                 {"role": "assistant", "content": "```sql\nSELECT COUNT(*) FROM customers;\n```\nThe total number of customers."}]
    msgs.append({"role": "user", "content": ask})
    return {"model": "auto", "messages": msgs}, ("simple" if simple else "complex"), rule, reason


# --------------------------------------------------------------------------------------------------
# agent tool loops

AGENT_SYSTEM = (
    "You are Ops Copilot, an agent that helps the operations team of {org}. You can call tools. Think about "
    "which tool answers the user's request, call it with exact arguments, and answer from its result. Never "
    "fabricate tool results. If a tool fails, decide whether to retry, use another tool, or ask the user. "
    "Confirm before any action that changes data (refunds, cancellations). Be concise.")

AGENT_TOOLS = [
    {"type": "function", "function": {"name": "get_order", "description": "Look up an order by id.",
                                      "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}},
    {"type": "function", "function": {"name": "search_orders", "description": "Search orders by customer email and date range.",
                                      "parameters": {"type": "object", "properties": {"email": {"type": "string"}, "since": {"type": "string"}, "until": {"type": "string"}}, "required": ["email"]}}},
    {"type": "function", "function": {"name": "refund", "description": "Refund an order, fully or partially.",
                                      "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}}, "required": ["order_id"]}}},
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city.",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "inventory", "description": "Stock level of a SKU per warehouse.",
                                      "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}}},
]


def _call(name, args, cid):
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}


def agent(rng, i):
    order = f"A-{rng.randint(10000, 99999)}"
    system = AGENT_SYSTEM.format(org=rng.choice(["Larkspur Home", "Voltic", "Greenleaf Pantry"]))
    base = [{"role": "system", "content": system}]
    simple = rng.random() < 0.5
    k = rng.randrange(4)
    if simple:
        if k == 0:
            rule, reason = "S6", "obvious first tool call with the id given"
            msgs = base + [{"role": "user", "content": f"What's the status of order {order}?"}]
        elif k == 1:
            rule, reason = "S6", "tool result already holds the answer; relay it"
            msgs = base + [{"role": "user", "content": f"Where is order {order}?"}, _call("get_order", {"order_id": order}, "call_1"),
                           {"role": "tool", "tool_call_id": "call_1", "content": json.dumps(
                               {"id": order, "status": "shipped", "carrier": "UPS", "tracking": f"1Z{rng.randint(10**8, 10**9)}", "eta": "2026-11-04"})}]
        elif k == 2:
            rule, reason = "S6", "weather tool result to relay in a sentence"
            city = rng.choice(["Lisbon", "Denver", "Osaka"])
            msgs = base + [{"role": "user", "content": f"Is it raining in {city} right now? Our driver is asking."},
                           _call("get_weather", {"city": city}, "call_w"),
                           {"role": "tool", "tool_call_id": "call_w", "content": json.dumps({"city": city, "condition": rng.choice(["light rain", "clear", "overcast"]), "temp_c": rng.randint(4, 24)})}]
        else:
            rule, reason = "S6", "stock lookup result to relay"
            sku = f"SKU-{rng.randint(100, 999)}"
            msgs = base + [{"role": "user", "content": f"How many {sku} do we have in Reno?"}, _call("inventory", {"sku": sku}, "call_i"),
                           {"role": "tool", "tool_call_id": "call_i", "content": json.dumps({"sku": sku, "warehouses": {"Reno": rng.randint(0, 80), "Austin": rng.randint(0, 80)}})}]
    else:
        if k == 0:
            rule, reason = "C6", "tool failed; must choose a recovery path"
            msgs = base + [{"role": "user", "content": f"Refund the duplicate charge on jane.doe@example.com's order from last Tuesday."},
                           _call("search_orders", {"email": "jane.doe@example.com", "since": "2026-10-20", "until": "2026-10-22"}, "call_s"),
                           {"role": "tool", "tool_call_id": "call_s", "content": json.dumps({"error": "timeout after 30s", "retryable": True})}]
        elif k == 1:
            rule, reason = "C6", "conflicting tool results must be reconciled before acting"
            msgs = base + [{"role": "user", "content": f"Customer says {order} was charged twice. Check and refund the extra charge if so."},
                           _call("get_order", {"order_id": order}, "call_1"),
                           {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"id": order, "amount": 184.5, "payments": [
                               {"id": "p1", "amount": 184.5, "status": "captured"}, {"id": "p2", "amount": 184.5, "status": "authorized"},
                               {"id": "p3", "amount": -184.5, "status": "voided"}]})}]
        elif k == 2:
            rule, reason = "C6", "multi-step plan across tools with dependencies"
            msgs = base + [{"role": "user", "content": "Find every order by sam@example.com since September where any item is now out of stock in all warehouses, and draft what we should tell him. Don't refund anything yet."}]
        else:
            rule, reason = "C6", "next action needs reasoning over several earlier results"
            sku = f"SKU-{rng.randint(100, 999)}"
            msgs = base + [{"role": "user", "content": f"Can we ship 120 units of {sku} to Boston by Friday? Austin to Boston takes 4 days, Reno 5, and it's Monday."},
                           _call("inventory", {"sku": sku}, "call_i"),
                           {"role": "tool", "tool_call_id": "call_i", "content": json.dumps({"sku": sku, "warehouses": {"Reno": 70, "Austin": 45}, "inbound": {"Austin": {"qty": 60, "arrives": "Tuesday"}}})}]
    return ({"model": "auto", "messages": msgs, "tools": AGENT_TOOLS, "tool_choice": "auto"},
            "simple" if simple else "complex", rule, reason)


# --------------------------------------------------------------------------------------------------
# multi-turn chats (general assistant)

CHAT_SYSTEM = ("You are Aria, a helpful general assistant in the {app} app. Be accurate and friendly. Use Markdown "
               "when it helps. If you are unsure, say so. The user's locale is {locale}.")

CHAT_HISTORIES = [
    ("What are three good houseplants for a dark apartment?",
     "1. **ZZ plant** - tolerates low light and irregular watering.\n2. **Snake plant** - hardy, needs water every 2-3 weeks.\n3. **Pothos** - grows in low light, easy to propagate."),
    ("Explain what an index fund is.",
     "An index fund is a fund that buys all (or a representative sample) of the securities in a market index, such as the S&P 500, so its return tracks the index. Fees are low because there is no stock picking."),
    ("Write a haiku about autumn in a city.",
     "Steel towers glow gold\nLeaves ride the subway's warm wind\nCoffee steams, hands cold"),
    ("I'm planning a 4-day trip to Lisbon. What should I not miss?",
     "Day 1: Alfama and the castle. Day 2: Belem (tower, monastery, pasteis). Day 3: Sintra day trip. Day 4: LX Factory and a sunset at a miradouro."),
    ("What's the difference between TCP and UDP?",
     "TCP is connection-oriented: it guarantees ordered, reliable delivery with retransmission and congestion control. UDP sends independent datagrams with no delivery guarantee, which makes it lighter and lower-latency."),
]

CHAT_SIMPLE = [
    ("S7", "reuse previous answer, shorter", "Can you make that shorter?"),
    ("S7", "translate previous answer", "Now in {language}, please."),
    ("S7", "thanks", "Perfect, thank you!"),
    ("S7", "recall from the previous answer", "What was the second one again?"),
    ("S7", "reformat previous answer", "Put that in a table."),
]
CHAT_COMPLEX = [
    ("C7", "asks for a deeper explanation with correct detail", "Why does that work, exactly? Go deeper and give a concrete worked example with numbers."),
    ("C2", "trade-off recommendation for the user's situation", "Given that I'm {situation}, which option would you pick and what are the risks? Compare them properly."),
    ("C7", "new correct content beyond the history: proof/derivation", "Can you prove or derive that rigorously, step by step, and point out where it would fail?"),
    ("C1", "multi-step planning with constraints", "Now plan it in detail with a budget of {budget} and these constraints: no car, one travel day lost to a 6-hour delay, and my partner is vegetarian. Give an hour-by-hour plan."),
]


def chat(rng, i):
    system = CHAT_SYSTEM.format(app=rng.choice(["Aria", "Pocket Assistant"]), locale=rng.choice(["en-US", "en-GB", "en-IN"]))
    turns = rng.sample(CHAT_HISTORIES, rng.randint(1, 3))
    msgs = [{"role": "system", "content": system}]
    for q, a in turns:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    simple = rng.random() < 0.55
    rule, reason, tmpl = rng.choice(CHAT_SIMPLE if simple else CHAT_COMPLEX)
    msgs.append({"role": "user", "content": tmpl.format(language=rng.choice(["Spanish", "Hindi", "German"]),
                                                        situation=rng.choice(["on a tight budget", "a beginner", "travelling with kids"]),
                                                        budget=rng.choice(["600 euros", "$900"]))})
    return {"model": "auto", "messages": msgs, "user": f"u-{rng.randint(100, 999)}"}, ("simple" if simple else "complex"), rule, reason


SURFACES = {"support": support, "code": code, "email": email, "search": search, "tools": tools,
            "analytics": analytics, "agent": agent, "chat": chat}


def split_of(rid: str) -> str:
    return "train" if int(hashlib.sha256(rid.encode()).hexdigest(), 16) % 2 == 0 else "test"


def generate() -> list[dict]:
    rows, seen = [], set()
    for surface, make in SURFACES.items():
        rng = random.Random(f"devset-13-{surface}")
        n = tries = 0
        while n < PER_SURFACE:
            tries += 1
            assert tries < 5000, surface
            body, label, rule, reason = make(rng, n)
            key = json.dumps(body, sort_keys=True)
            if key in seen:          # identical requests would sit in both splits
                continue
            seen.add(key)
            rid = f"{surface}-{n:03d}"
            rows.append({"id": rid, "surface": surface, "label": label, "rule": rule, "reason": reason,
                         "split": split_of(rid), "body": body})
            n += 1
    return rows


def main() -> None:
    rows = generate()
    with open(OUT, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    from collections import Counter
    print(f"wrote {len(rows)} requests to {OUT}")
    print(Counter((r["surface"], r["label"]) for r in rows))
    print(Counter((r["split"], r["label"]) for r in rows))


if __name__ == "__main__":
    main()
