"""Whether a mail's From is proven: DMARC, read from the MTA in front of Pulpit or checked here.

An email-first desk acts on who a mail says it is from, and the From header is whatever the
sender typed. Two kinds of proof exist, and this module gives the first; the signed reply
address (:mod:`core.mail.reply_address`) is the second.

- **Authentication-Results** (RFC 8601) written by the MTA that received the mail for us
  (Postfix with OpenDKIM/OpenDMARC, rspamd, Exchange Online...). Only a header carrying the
  authserv-id the admin names (``PULPIT_TRUSTED_AUTHSERV_ID``) counts, and only one added at
  our own hop: headers below the second ``Received`` field were written before the mail reached
  our MTA, by whoever sent it, and are ignored whatever id they claim. RFC 8601 section 5 asks
  the border MTA to delete headers that claim its id on incoming mail too; OpenDMARC, OpenDKIM
  and rspamd do. When several trusted headers disagree, the worst result wins.
- **DKIM checked here** (``PULPIT_VERIFY_DKIM=true``, for when Pulpit itself is the MX): every
  DKIM signature is verified with dkimpy; a valid one whose ``d=`` is aligned with the From
  domain (relaxed alignment, RFC 7489 3.1.1) is a DMARC pass. SPF is not evaluated here: the
  connecting address of the first hop is only known to an MTA in front.
- The domain's DMARC policy (``p=``, and ``sp=`` for a subdomain) decides what a failure
  means: read from the trusted header's comment (``dmarc=fail (p=reject ...)``) when the MTA
  writes it, else from DNS (``_dmarc.<domain>`` TXT) when DNS lookups are allowed.

The outcome is a :class:`Verdict`; what processing does with it is the table in docs/mail.md.
Nothing here touches the database.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

import authres

log = logging.getLogger(__name__)

#: dkimpy's DNS hook: a TXT lookup, ``name`` (bytes, no trailing dot) -> record or None.
DnsTxt = Callable[..., bytes | str | None]

_RANK = {"pass": 3, "none": 1, "fail": 0}
_POLICY = re.compile(r"\bp=(\w+)", re.I)
_ACTION = re.compile(r"\baction=(\w+)", re.I)
_DMARC_COMMENT = re.compile(r"\bdmarc\s*=\s*\w+\s*\(([^)]*)\)", re.I)
# Second-level labels under which organisations register (co.uk, com.pl): without the Public
# Suffix List, the organisational domain (RFC 7489 3.2) is found well enough with these.
_SLD = {"co", "com", "net", "org", "gov", "edu", "ac", "biz", "info", "waw", "krakow", "gda"}


@dataclass(frozen=True)
class TrustSettings:
    """What the admin decided about proof of a mail's sender (docs/settings.md)."""

    authserv_id: str = ""  # PULPIT_TRUSTED_AUTHSERV_ID; empty: no header is believed
    verify_dkim: bool = False  # PULPIT_VERIFY_DKIM: Pulpit is the MX and checks DKIM itself
    # PULPIT_SECRET_KEY, for the signed reply addresses; None: the session's (core.db.secret_key)
    secret: str | None = None
    dns: DnsTxt | None = None  # TXT lookups; None: dkimpy's resolver when verify_dkim is on

    @property
    def any_proof(self) -> bool:
        return bool(self.authserv_id) or self.verify_dkim


@dataclass(frozen=True)
class Verdict:
    """DMARC for the From domain: ``pass``, ``fail`` or ``none`` (no result to go by)."""

    dmarc: str
    policy: str | None  # the domain's published p= (reject, quarantine, none) when known
    source: str  # who said so, for the decisions log
    domain: str = ""

    @property
    def passed(self) -> bool:
        return self.dmarc == "pass"

    @property
    def enforced_failure(self) -> bool:
        """DMARC failed for a domain that asks receivers to reject or quarantine such mail."""
        return self.dmarc == "fail" and self.policy in ("reject", "quarantine")

    def describe(self) -> str:
        policy = f", p={self.policy}" if self.policy else ""
        return f"DMARC {self.dmarc} for {self.domain or '?'}{policy} ({self.source})"


NO_RESULT = Verdict("none", None, "no authentication configured")


def organisational_domain(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SLD:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(signer: str, from_domain: str) -> bool:
    """Relaxed identifier alignment (RFC 7489 3.1.1): the same organisational domain."""
    return organisational_domain(signer) == organisational_domain(from_domain)


def verdict(raw: bytes, from_addr: str, settings: TrustSettings) -> Verdict:
    """The DMARC verdict for ``from_addr`` on this mail; never raises on hostile input."""
    domain = from_addr.rpartition("@")[2].lower()
    if not domain or not settings.any_proof:
        return Verdict("none", None, NO_RESULT.source, domain)
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw).items()
    except Exception as exc:  # the stdlib on hostile bytes: no header is read, nothing proven
        log.warning("headers unreadable for authentication: %s", exc)
        headers = []
    if settings.authserv_id:
        found = _from_headers(headers, domain, settings)
        if found is not None:
            return found
    if settings.verify_dkim:
        return _from_dkim(raw, domain, settings)
    return Verdict("none", None, f"no Authentication-Results from {settings.authserv_id}", domain)


def _own_hop(headers: list[tuple[str, str]]) -> list[str]:
    """The Authentication-Results values written at our hop: above the second Received."""
    values: list[str] = []
    received = 0
    for name, value in headers:
        lname = name.lower()
        if lname == "received":
            received += 1
            if received >= 2:
                break
        elif lname == "authentication-results":
            values.append(str(value))
    return values


def _from_headers(
    headers: list[tuple[str, str]], domain: str, settings: TrustSettings
) -> Verdict | None:
    wanted = settings.authserv_id.strip().lower()
    results: list[tuple[str, str | None]] = []
    for value in _own_hop(headers):
        unfolded = " ".join(value.split())
        try:
            parsed = authres.AuthenticationResultsHeader.parse_value(unfolded)
        except Exception:  # authres raises its own family of syntax errors
            log.info("an Authentication-Results header could not be parsed: %.200s", unfolded)
            continue
        if str(parsed.authserv_id or "").lower() != wanted:
            continue
        for result in parsed.results:
            if str(result.method).lower() != "dmarc":
                continue
            header_from = next(
                (
                    str(p.value).lower()
                    for p in result.properties
                    if p.type == "header" and p.name == "from"
                ),
                domain,
            )
            if header_from != domain:
                continue  # a result about another From (a second From field): no proof here
            outcome = str(result.result).lower()
            results.append((outcome, _policy_in(unfolded)))
    if not results:
        return None
    # The worst of what our trusted MTA said: a forged "pass" that slipped through never
    # outweighs the real "fail".
    outcome, policy = min(results, key=lambda r: _RANK.get(_normal(r[0]), 1))
    outcome = _normal(outcome)
    source = f"Authentication-Results from {settings.authserv_id}"
    if outcome == "fail" and policy is None and settings.verify_dkim:
        policy = _published_policy(domain, settings)
    return Verdict(outcome, policy, source, domain)


def _normal(result: str) -> str:
    """RFC 7489 11.2 results: pass, fail; temperror, permerror and none prove nothing."""
    return result if result in ("pass", "fail") else "none"


def _policy_in(header: str) -> str | None:
    comment = _DMARC_COMMENT.search(header)
    text = comment.group(1) if comment else header
    match = _POLICY.search(text) or _ACTION.search(header)
    return match.group(1).lower() if match else None


def _dns(settings: TrustSettings) -> DnsTxt:
    if settings.dns is not None:
        return settings.dns
    from dkim.dnsplug import get_txt

    return get_txt  # type: ignore[no-any-return]


def _txt(settings: TrustSettings, name: str) -> str | None:
    try:
        answer = _dns(settings)(name.encode("ascii"))
    except Exception as exc:  # a resolver error is "no answer", never a lost mail
        log.info("TXT %s: %s", name, exc)
        return None
    if isinstance(answer, bytes):
        return answer.decode("ascii", "replace")
    return answer


def _published_policy(domain: str, settings: TrustSettings) -> str | None:
    """p= of ``_dmarc.<domain>``, else sp= (or p=) of the organisational domain (RFC 7489 6.6.3)."""
    record = _dmarc_record(settings, domain)
    if record is not None:
        return record.get("p")
    org = organisational_domain(domain)
    if org != domain:
        record = _dmarc_record(settings, org)
        if record is not None:
            return record.get("sp") or record.get("p")
    return None


def _dmarc_record(settings: TrustSettings, domain: str) -> dict[str, str] | None:
    text = _txt(settings, f"_dmarc.{domain}")
    if not text or not text.strip().lower().startswith("v=dmarc1"):
        return None
    tags: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip().lower()
    return tags


def _from_dkim(raw: bytes, domain: str, settings: TrustSettings) -> Verdict:
    import dkim

    source = "DKIM verified by Pulpit"
    dns = _dns(settings)
    try:
        checker = dkim.DKIM(raw)
        signatures = [h for h in checker.headers if h[0].lower() == b"dkim-signature"]
        for index in range(len(signatures)):
            try:
                ok = checker.verify(idx=index, dnsfunc=dns)
            except dkim.DKIMException as exc:
                log.info("DKIM signature %s of a mail from %s: %s", index, domain, exc)
                continue
            signer = (checker.domain or b"").decode("ascii", "replace")
            if ok and aligned(signer, domain):
                return Verdict("pass", None, f"{source} (d={signer})", domain)
    except Exception as exc:  # dkimpy on hostile bytes: nothing proven
        log.info("DKIM check of a mail from %s failed: %s", domain, exc)
    policy = _published_policy(domain, settings)
    if policy is None:
        return Verdict("none", None, f"{source}: no aligned signature, no DMARC record", domain)
    return Verdict("fail", policy, f"{source}: no valid aligned signature", domain)
