#!/usr/bin/env python3
"""Runner for HL7's terminology ecosystem test cases (FHIR/fhir-test-cases, folder tx/).

Usage:
    run.py BASE_URL [--suite NAME]... [--filter TEXT] [--modes flat,...] [--strict-upload]
           [--data DIR] [--json FILE] [--tx-resource] [--no-setup] [--verbose]

BASE_URL is the FHIR base (e.g. http://127.0.0.1:8080/fhir). The data defaults to
fixtures/tx-ecosystem/ of this repository (a copy of part of HL7's tx/ folder, see its
README.md). Standard library only. The exit code is always 0: this is a measuring tool;
read the summary (or --json) for the result.

What it does, per suite of test-cases.json (suites with "disabled", or with a "mode"
that --modes does not name, are skipped, as HL7's runner skips them):

1. Setup. HL7's Java runner (TxTester in org.hl7.fhir.validation) does not store the
   suite's setup resources: it adds every one of them to each request as a
   `tx-resource` parameter. This server is asked to hold them instead: each setup file
   is written with `PUT BASE/{resourceType}/{id}` before the suite's tests
   (--tx-resource additionally sends them as `tx-resource` parameters, as Java does).
   The PUT carries `Prefer: handling=lenient` so that the server's write validation
   does not refuse test resources for profile reasons (--strict-upload leaves it out).
   The files are R5; the server is R4. The Java runner, talking to an R4 server,
   converts every R5 resource to R4 with its 4.0<->5.0 version converter and converts
   the R4 answer back to R5 before comparing. This script does the same for what these
   tests use:
     * R5-only elements that the converter has no R4 place for are dropped
       (versionAlgorithm[x], copyrightLabel, approvalDate, lastReviewDate,
       effectivePeriod, topic, author, editor, reviewer, endorser, relatedArtifact,
       ValueSet.scope, compose.include.copyright, compose.property,
       designation.additionalUse, expansion.next);
     * ValueSet.expansion.property and expansion.contains.property become the R4
       extensions http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.property
       (sub-extensions code, uri) and ...extension-ValueSet.expansion.contains.property
       (sub-extensions code, value) -- and back again when the answer is read;
     * the Java parser/serialiser round trip turns primitives written as JSON strings
       into their JSON types ("valueInteger": "6" -> 6, "valueBoolean": "true" -> true,
       "experimental": "false" -> false); the same coercion is applied here.
     * keys that are not FHIR JSON (the test files' "title:en", "definition:de"
       translations) are dropped, as the Java parser skips them.
   When two setup files of one suite share an id (the two versions of
   CodeSystem/version), the second is stored under its file name as id, so both
   versions stay on the server as both are in the Java runner's requests.
   What was changed in each setup resource is listed with --verbose.

2. Each test. The request Parameters (plus the parameters of the test's "profile"
   file, or of parameters-default.json, as the Java runner adds them) is POSTed as
   application/fhir+json to
       expand            -> BASE/ValueSet/$expand
       validate-code     -> BASE/ValueSet/$validate-code
       cs-validate-code  -> BASE/CodeSystem/$validate-code
       lookup            -> BASE/CodeSystem/$lookup
       translate         -> BASE/ConceptMap/$translate
       subsumes          -> BASE/CodeSystem/$subsumes
   A test's "Accept-Language" value is sent as the Accept-Language header. Older
   versions of test-cases.json (the one copied here) call that field
   "Content-Language"; its value is sent both as Accept-Language and as
   Content-Language. The expected file is "response", or "response:MODE" for the first
   --modes MODE the test has (e.g. --modes flat picks the flat expansions).

3. Scrubbing of the answer before comparison (as TxTesterScrubbers does):
     * `text` and `meta` of the returned resource (and of resources inside a
       Parameters answer) are removed;
     * extensions whose url is absolute and not in the runner's list of extensions the
       tests manage (valueset-concept-definition, valueset-deprecated, valueset-label,
       valueset-conceptOrder, valueset-supplement, codesystem-label,
       codesystem-conceptOrder, codesystem-alternate, itemWeight, rendering-style,
       rendering-xhtml, coding-sctdescid, translation, alternate-code-use/status and a
       few test URLs) are removed everywhere except inside ValueSet.compose;
     * in an OperationOutcome, issues that have `diagnostics` but no `details` are
       removed, and `diagnostics` is dropped from the others.
   (The Java runner also tests whether a validate-code answer has `system` without
   `version`, but it swallows that exception, so it never fails a test; not done here.)

4. Comparison (CompareUtilities.checkJsonSrcIsSame, not in pattern mode), expected
   file against scrubbed answer:
     * Objects: every property of the answer must exist in the expected object --
       an extra property fails ("unexpected property"). Every expected property must be
       in the answer, except `$optional$`, the names listed in the object's
       `$optional-properties$` (with "*" meaning all), `$count-arrays$`, and a property
       whose value is an array made only of `$optional$` objects.
     * Arrays: the answer may not have more items than expected, nor fewer than the
       expected items that are not optional. An expected item is optional when it is an
       object with `"$optional$": true`, or `"$optional$": "MODE"` with MODE in --modes,
       or "!MODE" with MODE not in --modes, or "warning:..." (optional, noted). Arrays
       named in the expected object's `$count-arrays$` are compared by length only.
       Order: HL7's readme says array order never matters; the Java runner sorts the
       answer (parameters by name, contains by code, designations by language/value,
       issues by severity/code/location/text, extensions by url) and then walks both
       arrays in order. This script matches items regardless of order (a complete
       bipartite matching), which accepts everything the Java runner accepts plus the
       same items in a different order.
     * Strings are equal, or the expected string is a template:
         $$ anything; $instant$, $date$, $uuid$ (urn:uuid:...), $id$, $url$, $token$,
         $semver$, $string$ (no leading/trailing blanks): the regex of that type;
         $version$: the server's FHIR version (from /metadata, else anything);
         $choice:a|b|c$: one of them; $fragments:a|b$: contains every fragment
         (case-insensitive); $external:key:a|b$: without an externals file (none here)
         only the fragments are checked, and with no fragments anything passes -- so
         OperationOutcome/message texts written as $external$ are compared by pattern
         only. Like the Java runner, the template is split at every ':', so in
         "$external:1:http://x/vs|1.0$" the only fragment checked is "http".
         Texts written literally in the expected file (older files) must match exactly.
       Two strings that both contain "<div" are not compared (narratives).
     * Numbers compare by their JSON text (1 and 1.0 differ), booleans by value; a
       string where a number/boolean is expected (or the reverse) fails.
     * HTTP status: if the test has "http-code" (2xx/4xx/...) it is checked. Otherwise
       an expected OperationOutcome accepts any 4xx/5xx answer and anything else
       requires 2xx (the Java runner of the test-cases version copied here did not check
       status codes; newer ones default to 2xx unless "http-code" says otherwise).

Output: one line per test, `PASS suite/test` or `FAIL suite/test: <first difference>`
(with its JSON path), then counts per suite. --json FILE writes every result with the
expected and actual documents.
"""

import argparse
import copy
import decimal
import json
import os
import re
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "fixtures", "tx-ecosystem"))

EXT_VS_PROP = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.property"
EXT_CONTAINS_PROP = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.contains.property"

MANAGED_EXTENSIONS = {
    "http://hl7.org/fhir/StructureDefinition/codesystem-alternate",
    "http://hl7.org/fhir/StructureDefinition/codesystem-conceptOrder",
    "http://hl7.org/fhir/StructureDefinition/codesystem-label",
    "http://hl7.org/fhir/StructureDefinition/coding-sctdescid",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/rendering-style",
    "http://hl7.org/fhir/StructureDefinition/rendering-xhtml",
    "http://hl7.org/fhir/StructureDefinition/translation",
    "http://hl7.org/fhir/StructureDefinition/valueset-concept-definition",
    "http://hl7.org/fhir/StructureDefinition/valueset-conceptOrder",
    "http://hl7.org/fhir/StructureDefinition/valueset-deprecated",
    "http://hl7.org/fhir/StructureDefinition/valueset-label",
    "http://hl7.org/fhir/StructureDefinition/valueset-supplement",
    "http://hl7.org/fhir/test/CodeSystem/de-multi",
    "http://hl7.org/fhir/test/CodeSystem/en-multi",
    "http://hl7.org/fhir/test/StructureDefinition/unknown-extension-1",
    "http://hl7.org/fhir/test/StructureDefinition/unknown-extension-3",
    "http://hl7.org/fhir/test/StructureDefinition/unknown-extension-4",
    "http://hl7.org/fhir/test/StructureDefinition/unknown-extension-5",
    "http://hl7.org/fhir/test/ValueSet/extensions-bad-supplement",
    "http://hl7.org/fhir/test/ValueSet/simple-all",
    "http://hl7.org/fhir/test/ValueSet/simple-enumerated",
    "http://hl7.org/fhir/StructureDefinition/alternate-code-use",
    "http://hl7.org/fhir/StructureDefinition/alternate-code-status",
    "http://hl7.org/fhir/test/ValueSet/simple-filter-isa",
}

OPERATIONS = {
    "expand": ("ValueSet", "$expand"),
    "validate-code": ("ValueSet", "$validate-code"),
    "cs-validate-code": ("CodeSystem", "$validate-code"),
    "lookup": ("CodeSystem", "$lookup"),
    "translate": ("ConceptMap", "$translate"),
    "subsumes": ("CodeSystem", "$subsumes"),
}

# R5 elements with no place in R4 (dropped, as the version converter drops them).
R5_ONLY_TOP = {"versionAlgorithmString", "versionAlgorithmCoding", "copyrightLabel", "approvalDate",
               "lastReviewDate", "effectivePeriod", "topic", "author", "editor", "reviewer",
               "endorser", "relatedArtifact"}
R5_ONLY_VS_TOP = {"scope"}

INT_KEYS = {"valueInteger", "valueUnsignedInt", "valuePositiveInt", "total", "offset", "count"}
BOOL_KEYS = {"valueBoolean", "experimental", "caseSensitive", "compositional", "versionNeeded",
             "inactive", "abstract", "immutable", "result"}
DEC_KEYS = {"valueDecimal"}


# ---------------------------------------------------------------- helpers

def load_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"), parse_float=decimal.Decimal)


def _json_default(o):
    if isinstance(o, decimal.Decimal):
        # keep the decimal's text (json can't emit raw text, float is close enough for
        # sending: test values are short decimals)
        return float(o)
    raise TypeError(type(o))


def coerce_primitives(node, dropped=None, path=""):
    """Turn primitives written as strings into JSON types, as a Java parse/serialise does."""
    if isinstance(node, dict):
        for k in list(node.keys()):
            v = node[k]
            p = path + "." + k
            if isinstance(v, str):
                if k in INT_KEYS and re.fullmatch(r"-?\d+", v):
                    node[k] = int(v)
                    if dropped is not None:
                        dropped.append("coerced %s to integer" % p)
                elif k in BOOL_KEYS and v in ("true", "false"):
                    node[k] = (v == "true")
                    if dropped is not None:
                        dropped.append("coerced %s to boolean" % p)
                elif k in DEC_KEYS and re.fullmatch(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", v):
                    node[k] = decimal.Decimal(v)
                    if dropped is not None:
                        dropped.append("coerced %s to decimal" % p)
            else:
                coerce_primitives(v, dropped, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            coerce_primitives(v, dropped, "%s[%d]" % (path, i))
    return node


def _drop_designation_additional_use(node, dropped, path):
    if isinstance(node, dict):
        for k, v in list(node.items()):
            if k == "designation" and isinstance(v, list):
                for i, d in enumerate(v):
                    if isinstance(d, dict) and "additionalUse" in d:
                        del d["additionalUse"]
                        dropped.append("%s.designation[%d].additionalUse" % (path, i))
            _drop_designation_additional_use(v, dropped, path + "." + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _drop_designation_additional_use(v, dropped, "%s[%d]" % (path, i))


def contains_props_to_r4(contains_list):
    for c in contains_list or []:
        if "property" in c:
            exts = c.setdefault("extension", [])
            for p in c.pop("property"):
                sub = [{"url": "code", "valueCode": p.get("code")}]
                for k, v in p.items():
                    if k.startswith("value"):
                        sub.append({"url": "value", k: v})
                exts.append({"url": EXT_CONTAINS_PROP, "extension": sub})
        contains_props_to_r4(c.get("contains"))


def _drop_colon_keys(node, changed, path):
    """Keys such as "title:en" are not FHIR JSON; the Java parser skips them."""
    if isinstance(node, dict):
        for k in list(node.keys()):
            if ":" in k:
                del node[k]
                changed.append("dropped %s.%s (not a FHIR JSON property)" % (path, k))
            else:
                _drop_colon_keys(node[k], changed, path + "." + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _drop_colon_keys(v, changed, "%s[%d]" % (path, i))


def r5_to_r4(res):
    """Return (R4 copy, list of what was changed)."""
    res = copy.deepcopy(res)
    changed = []
    _drop_colon_keys(res, changed, res.get("resourceType", ""))
    rt = res.get("resourceType")
    for k in list(res.keys()):
        if k in R5_ONLY_TOP or (rt == "ValueSet" and k in R5_ONLY_VS_TOP):
            del res[k]
            changed.append("dropped %s" % k)
    if rt == "ValueSet":
        comp = res.get("compose")
        if isinstance(comp, dict):
            if "property" in comp:
                del comp["property"]
                changed.append("dropped compose.property")
            for part in ("include", "exclude"):
                for i, inc in enumerate(comp.get(part, [])):
                    if "copyright" in inc:
                        del inc["copyright"]
                        changed.append("dropped compose.%s[%d].copyright" % (part, i))
        exp = res.get("expansion")
        if isinstance(exp, dict):
            if "next" in exp:
                del exp["next"]
                changed.append("dropped expansion.next")
            if "property" in exp:
                exts = exp.setdefault("extension", [])
                for p in exp.pop("property"):
                    exts.append({"url": EXT_VS_PROP, "extension": [
                        {"url": "code", "valueCode": p.get("code")},
                        {"url": "uri", "valueUri": p.get("uri")}]})
                changed.append("expansion.property -> extension")
            contains_props_to_r4(exp.get("contains"))
    if rt == "Parameters":
        for p in res.get("parameter", []):
            if isinstance(p.get("resource"), dict):
                p["resource"], sub = r5_to_r4(p["resource"])
                changed.extend("parameter %s: %s" % (p.get("name"), s) for s in sub)
    _drop_designation_additional_use(res, changed, rt or "")
    coerce_primitives(res, changed, rt or "")
    return res, changed


def contains_props_to_r5(contains_list):
    for c in contains_list or []:
        exts = c.get("extension")
        if isinstance(exts, list):
            keep = []
            for e in exts:
                if isinstance(e, dict) and e.get("url") == EXT_CONTAINS_PROP:
                    prop = {}
                    for sub in e.get("extension", []):
                        if sub.get("url") == "code":
                            prop["code"] = sub.get("valueCode", sub.get("valueString"))
                        elif sub.get("url") == "value":
                            for k, v in sub.items():
                                if k.startswith("value"):
                                    prop[k] = v
                    c.setdefault("property", []).append(prop)
                else:
                    keep.append(e)
            if keep:
                c["extension"] = keep
            else:
                del c["extension"]
        contains_props_to_r5(c.get("contains"))


def r4_to_r5(res):
    res = copy.deepcopy(res)
    if not isinstance(res, dict):
        return res
    if res.get("resourceType") == "ValueSet" and isinstance(res.get("expansion"), dict):
        exp = res["expansion"]
        exts = exp.get("extension")
        if isinstance(exts, list):
            keep = []
            for e in exts:
                if isinstance(e, dict) and e.get("url") == EXT_VS_PROP:
                    prop = {}
                    for sub in e.get("extension", []):
                        if sub.get("url") == "code":
                            prop["code"] = sub.get("valueCode")
                        elif sub.get("url") == "uri":
                            prop["uri"] = sub.get("valueUri")
                    exp.setdefault("property", []).append(prop)
                else:
                    keep.append(e)
            if keep:
                exp["extension"] = keep
            else:
                del exp["extension"]
        contains_props_to_r5(exp.get("contains"))
    if res.get("resourceType") == "Parameters":
        for p in res.get("parameter", []):
            if isinstance(p.get("resource"), dict):
                p["resource"] = r4_to_r5(p["resource"])
    return res


# ---------------------------------------------------------------- scrubbing

def _is_absolute(url):
    return isinstance(url, str) and re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url) is not None


def _scrub_extensions(node, in_compose=False):
    if isinstance(node, dict):
        for key in ("extension", "modifierExtension"):
            if key in node and isinstance(node[key], list) and not in_compose:
                kept = [e for e in node[key]
                        if not (isinstance(e, dict) and _is_absolute(e.get("url"))
                                and e.get("url") not in MANAGED_EXTENSIONS)]
                if kept:
                    node[key] = kept
                else:
                    del node[key]
        for k, v in node.items():
            _scrub_extensions(v, in_compose or k == "compose")
    elif isinstance(node, list):
        for v in node:
            _scrub_extensions(v, in_compose)


def scrub(res):
    res = copy.deepcopy(res)
    if not isinstance(res, dict):
        return res

    def scrub_resource(r):
        r.pop("meta", None)
        if r.get("resourceType") != "Parameters":
            r.pop("text", None)
        if r.get("resourceType") == "OperationOutcome":
            issues = []
            for iss in r.get("issue", []):
                if "diagnostics" in iss and "details" not in iss:
                    continue
                iss.pop("diagnostics", None)
                issues.append(iss)
            if "issue" in r:
                r["issue"] = issues
        if r.get("resourceType") == "Parameters":
            for p in r.get("parameter", []):
                if isinstance(p.get("resource"), dict):
                    scrub_resource(p["resource"])

    scrub_resource(res)
    _scrub_extensions(res)
    return res


# ---------------------------------------------------------------- comparison

INSTANT_RE = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
DATE_RE = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?"
TEMPLATES = {
    "$instant$": lambda s, v: re.fullmatch(INSTANT_RE, s) is not None,
    "$date$": lambda s, v: re.fullmatch(DATE_RE, s) is not None,
    "$uuid$": lambda s, v: re.fullmatch(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", s) is not None,
    "$string$": lambda s, v: s == s.strip(),
    "$id$": lambda s, v: re.fullmatch(r"[A-Za-z0-9\-\.]{1,64}", s) is not None,
    "$url$": lambda s, v: re.fullmatch(r"(https?://|www\.)[-a-zA-Z0-9+&@#/%?=~_|!:.;]*[-a-zA-Z0-9+&@#/%=~_|]", s) is not None,
    "$token$": lambda s, v: re.fullmatch(r"[0-9a-zA-Z_][0-9a-zA-Z_\.\-]*", s) is not None,
    "$semver$": lambda s, v: re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?", s) is not None,
    "$version$": lambda s, v: ("version" not in v) or s == v["version"],
    "$$": lambda s, v: True,
}


class Comparer:
    def __init__(self, modes, variables):
        self.modes = set(modes)
        self.vars = variables
        self.warnings = []

    def string_matches(self, actual, expected):
        if expected.startswith("$") and expected.endswith("$") and len(expected) > 1:
            if expected.startswith("$choice:"):
                return actual in expected[8:-1].split("|")
            if expected.startswith("$fragments:"):
                return all(f.lower() in actual.lower() for f in expected[11:-1].split("|"))
            if expected.startswith("$external:"):
                cmd = expected[1:-1].split(":")
                if len(cmd) <= 2:
                    return True
                return all(f.lower() in actual.lower() for f in cmd[2].split("|"))
            if expected in TEMPLATES:
                return TEMPLATES[expected](actual, self.vars)
            raise ValueError("Unhandled template: " + expected)
        return actual == expected

    def optional_item(self, e):
        if not isinstance(e, dict) or "$optional$" not in e:
            return False
        o = e["$optional$"]
        if o is True:
            return True
        if isinstance(o, str):
            if o.startswith("!"):
                return o[1:] not in self.modes
            if o.startswith("warning:"):
                return True
            return o in self.modes
        return False

    def compare(self, exp, act, path):
        """None when equal, else (path, message)."""
        if isinstance(exp, dict) and isinstance(act, dict):
            return self.compare_objects(exp, act, path)
        if isinstance(exp, list) and isinstance(act, list):
            return self.compare_arrays(exp, act, path, False)
        if isinstance(exp, (dict, list)) or isinstance(act, (dict, list)):
            return (path, "type differs: expected %s, actual %s" % (_kind(exp), snippet(act)))
        if isinstance(exp, bool) or isinstance(act, bool):
            if isinstance(exp, bool) and isinstance(act, bool):
                return None if exp == act else (path, "expected %s, actual %s" % (jtext(exp), jtext(act)))
            return (path, "type differs: expected %s, actual %s" % (snippet(exp), snippet(act)))
        if isinstance(exp, str) and isinstance(act, str):
            if "<div" in exp and "<div" in act:
                return None
            if self.string_matches(act, exp):
                return None
            return (path, "expected %s, actual %s" % (present_expected(exp), json.dumps(act, ensure_ascii=False)))
        if isinstance(exp, (int, decimal.Decimal)) and isinstance(act, (int, decimal.Decimal)):
            return None if str(exp) == str(act) else (path, "expected %s, actual %s" % (exp, act))
        if exp is None and act is None:
            return None
        return (path, "type differs: expected %s, actual %s" % (snippet(exp), snippet(act)))

    def compare_objects(self, exp, act, path):
        optionals = set()
        if "$optional-properties$" in exp:
            optionals |= {"$optional-properties$", "$count-arrays$"} | set(exp["$optional-properties$"])
        count_only = set(exp.get("$count-arrays$", []))
        for k, v in act.items():
            if k == "fhir_comments":
                continue
            if k in exp:
                if k in count_only and isinstance(v, list) and isinstance(exp[k], list):
                    if len(v) != len(exp[k]):
                        return (path + "." + k, "array item count differs: expected %d, actual %d" % (len(exp[k]), len(v)))
                    continue
                d = self.compare(exp[k], v, path + "." + k)
                if d:
                    return d
            else:
                return (path + "." + k, "unexpected property (not in expected): %s" % snippet(v))
        for k, v in exp.items():
            if k in ("fhir_comments", "$optional$", "$count-arrays$") or k in optionals or "*" in optionals:
                continue
            if k not in act:
                if isinstance(v, list) and all((not isinstance(i, dict)) or "$optional$" in i for i in v):
                    continue
                return (path + "." + k, "missing property (expected %s)" % snippet(v))
        return None

    def compare_arrays(self, exp, act, path, count_only):
        mandatory = [i for i, e in enumerate(exp) if not self.optional_item(e)]
        if len(act) > len(exp) or len(act) < len(mandatory):
            return (path, "array item count differs: expected %d%s, actual %d%s" % (
                len(exp), "" if len(mandatory) == len(exp) else " (%d required)" % len(mandatory),
                len(act), _array_hint(exp, act, self)))
        # match[e][a]
        m = [[self.compare(e, a, "%s[%d]" % (path, ai)) is None for ai, a in enumerate(act)] for e in exp]
        match_act = [None] * len(act)   # actual index -> expected index
        match_exp = [None] * len(exp)

        def augment_from_exp(ei, seen):
            for ai in range(len(act)):
                if m[ei][ai] and ai not in seen:
                    seen.add(ai)
                    if match_act[ai] is None or augment_from_exp(match_act[ai], seen):
                        match_act[ai] = ei
                        match_exp[ei] = ai
                        return True
            return False

        for ei in mandatory:
            if not augment_from_exp(ei, set()):
                return self.explain_missing(exp[ei], act, match_act, path, ei)
        # remaining actual items must match some (optional) expected item
        for ai in range(len(act)):
            if match_act[ai] is None:
                ok = False
                for ei in range(len(exp)):
                    if match_exp[ei] is None and m[ei][ai]:
                        match_exp[ei] = ai
                        match_act[ai] = ei
                        ok = True
                        break
                if not ok:
                    # try re-routing through an augmenting path starting at a free optional item
                    for ei in range(len(exp)):
                        if match_exp[ei] is None and self.optional_item(exp[ei]) and augment_from_exp(ei, set()):
                            if match_act[ai] is not None:
                                ok = True
                                break
                if not ok:
                    return ("%s[%d]" % (path, ai), "unexpected item in answer (no expected item matches it): %s" % snippet(act[ai]))
        for ei, e in enumerate(exp):
            if match_exp[ei] is None and isinstance(e, dict) and isinstance(e.get("$optional$"), str) and e["$optional$"].startswith("warning:"):
                self.warnings.append(e["$optional$"][8:])
        return None

    def explain_missing(self, e, act, match_act, path, ei):
        best = None
        for ai, a in enumerate(act):
            d = self.compare(e, a, "%s[%d]" % (path, ai))
            if d is None:
                continue
            score = _similarity(e, a)
            if best is None or score > best[0]:
                best = (score, d)
        if best is not None and best[0] > 0:
            p, msg = best[1]
            return (p, msg + "  [closest answer item to expected %s[%d] %s]" % (path, ei, key_of(e)))
        return ("%s[%d]" % (path, ei), "expected item not in answer: %s" % snippet(e))


def all_differences(cmp, exp, act, path, out, limit=40):
    """Every difference (not just the first), for the report: objects key by key, arrays
    by pairing each expected item with an equal answer item, or else the most similar one."""
    if len(out) >= limit:
        return
    if isinstance(exp, dict) and isinstance(act, dict):
        optionals = set()
        if "$optional-properties$" in exp:
            optionals |= {"$optional-properties$", "$count-arrays$"} | set(exp["$optional-properties$"])
        for k, v in act.items():
            if k == "fhir_comments":
                continue
            if k not in exp:
                out.append((path + "." + k, "unexpected property (not in expected): %s" % snippet(v)))
            elif k in exp.get("$count-arrays$", []):
                if isinstance(v, list) and isinstance(exp[k], list) and len(v) != len(exp[k]):
                    out.append((path + "." + k, "array item count differs: expected %d, actual %d" % (len(exp[k]), len(v))))
            else:
                all_differences(cmp, exp[k], v, path + "." + k, out, limit)
        for k, v in exp.items():
            if k in ("fhir_comments", "$optional$", "$count-arrays$") or k in optionals or "*" in optionals:
                continue
            if k not in act:
                if isinstance(v, list) and all((not isinstance(i, dict)) or "$optional$" in i for i in v):
                    continue
                out.append((path + "." + k, "missing property (expected %s)" % snippet(v)))
        return
    if isinstance(exp, list) and isinstance(act, list):
        used = set()
        pending = []
        for ei, e in enumerate(exp):
            hit = None
            for ai, a in enumerate(act):
                if ai not in used and cmp.compare(e, a, "%s[%d]" % (path, ai)) is None:
                    hit = ai
                    break
            if hit is not None:
                used.add(hit)
            else:
                pending.append(ei)
        for ei in pending:
            e = exp[ei]
            best = None
            for ai, a in enumerate(act):
                if ai in used:
                    continue
                sc = _similarity(e, a)
                if sc > 0 and (best is None or sc > best[0]):
                    best = (sc, ai)
            if best is not None and best[0] >= 10:
                used.add(best[1])
                all_differences(cmp, e, act[best[1]], "%s[%d]" % (path, best[1]), out, limit)
            elif not cmp.optional_item(e):
                out.append(("%s[%d]" % (path, ei), "expected item not in answer: %s" % snippet(e)))
        for ai, a in enumerate(act):
            if ai not in used:
                out.append(("%s[%d]" % (path, ai), "unexpected item in answer: %s" % snippet(a)))
        return
    d = cmp.compare(exp, act, path)
    if d:
        out.append(d)


def _similarity(e, a):
    """How alike two items are: shared identifying keys count most."""
    if not (isinstance(e, dict) and isinstance(a, dict)):
        return 0
    score = 0
    for k in ("name", "code", "url", "system", "severity", "language", "value"):
        if k in e and k in a and e[k] == a[k]:
            score += 10 if k in ("name", "code", "url") else 3
    score += len(set(e) & set(a))
    return score


def key_of(e):
    if isinstance(e, dict):
        for k in ("name", "code", "url"):
            if k in e:
                return "(%s=%s)" % (k, e[k])
    return ""


def _array_hint(exp, act, comparer):
    def names(arr):
        out = []
        for x in arr:
            k = key_of(x)
            if k:
                out.append(k[1:-1].split("=", 1)[1])
        return out
    en, an = names(exp), names(act)
    if en or an:
        extra = [x for x in an if x not in en]
        missing = [x for x in en if x not in an]
        parts = []
        if extra:
            parts.append("extra in answer: %s" % ", ".join(sorted(set(extra))))
        if missing:
            parts.append("missing from answer: %s" % ", ".join(sorted(set(missing))))
        if parts:
            return " (" + "; ".join(parts) + ")"
    return ""


def _kind(v):
    return {dict: "object", list: "array"}.get(type(v), type(v).__name__)


def jtext(v):
    return json.dumps(v, default=str, ensure_ascii=False)


def snippet(v, limit=160):
    s = json.dumps(v, default=str, ensure_ascii=False)
    return s if len(s) <= limit else s[:limit] + "..."


def present_expected(exp):
    if exp.startswith("$choice:"):
        return "one of %s" % exp[8:-1].split("|")
    if exp.startswith("$fragments:"):
        return "text containing all of %s" % exp[11:-1].split("|")
    if exp.startswith("$external:"):
        cmd = exp[1:-1].split(":")
        return "text containing all of %s (external %s)" % (cmd[2].split("|") if len(cmd) > 2 else [], cmd[1])
    return json.dumps(exp, ensure_ascii=False)


# ---------------------------------------------------------------- HTTP

def http(method, url, body=None, headers=None, timeout=60):
    data = None
    hdrs = {"Accept": "application/fhir+json"}
    if body is not None:
        data = json.dumps(body, ensure_ascii=False, default=_json_default).encode("utf-8")
        hdrs["Content-Type"] = "application/fhir+json"
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception as e:  # connection refused, timeout
        return 0, str(e).encode()


def parse_body(raw):
    try:
        return json.loads(raw.decode("utf-8"), parse_float=decimal.Decimal)
    except Exception:
        return None


def oo_text(body):
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        msgs = []
        for i in body.get("issue", []):
            t = (i.get("details") or {}).get("text") or i.get("diagnostics") or i.get("code")
            msgs.append("%s: %s" % (i.get("severity"), t))
        return "; ".join(msgs)
    return snippet(body)


# ---------------------------------------------------------------- running

def status_ok(code_spec, status):
    lo = int(code_spec[0]) * 100
    return lo <= status < lo + 100


class Runner:
    def __init__(self, args):
        self.args = args
        self.base = args.base_url.rstrip("/")
        self.data = args.data
        self.modes = [m for m in (args.modes or "").split(",") if m]
        self.results = []
        self.setup_log = {}
        self.variables = {}

    def path(self, rel):
        return os.path.join(self.data, rel)

    def fetch_version(self):
        st, raw = http("GET", self.base + "/metadata")
        body = parse_body(raw) if st == 200 else None
        if isinstance(body, dict) and body.get("fhirVersion"):
            self.variables["version"] = body["fhirVersion"]

    def load_setup(self, suite):
        log = []
        resources = []
        used_ids = set()
        for rel in suite.get("setup", []):
            p = self.path(rel)
            if not os.path.exists(p):
                log.append({"file": rel, "status": "missing", "detail": "file not in fixtures"})
                continue
            res = load_json(p)
            r4, changed = r5_to_r4(res)
            resources.append(r4)
            if self.args.no_setup:
                continue
            rid = r4.get("id") or os.path.splitext(os.path.basename(rel))[0]
            if (r4["resourceType"], rid) in used_ids:
                # two setup files of one suite share an id (e.g. two versions of one code
                # system): the Java runner sends both; here the second gets its own id so
                # that it does not replace the first.
                rid = re.sub(r"[^A-Za-z0-9\-.]", "-", os.path.splitext(os.path.basename(rel))[0])[:64]
                changed.append("id changed to %s (another setup file of this suite has the same id)" % rid)
            used_ids.add((r4["resourceType"], rid))
            r4["id"] = rid
            hdrs = {} if self.args.strict_upload else {"Prefer": "handling=lenient"}
            st, raw = http("PUT", "%s/%s/%s" % (self.base, r4["resourceType"], rid), r4, hdrs)
            entry = {"file": rel, "status": st, "changed": changed}
            if not (200 <= st < 300):
                entry["detail"] = oo_text(parse_body(raw)) if raw else ""
            log.append(entry)
        return resources, log

    def run(self):
        tc = load_json(self.path("test-cases.json"))
        self.fetch_version()
        for suite in tc.get("suites", []):
            name = suite.get("name")
            if self.args.suite and name not in self.args.suite:
                continue
            if suite.get("disabled"):
                continue
            if suite.get("mode") and suite["mode"] not in self.modes:
                continue
            tests = [t for t in suite.get("tests", [])
                     if (not self.args.filter or self.args.filter in t.get("name", ""))]
            if not tests:
                continue
            resources, log = self.load_setup(suite)
            self.setup_log[name] = log
            bad = [e for e in log if e["status"] == "missing" or not (isinstance(e["status"], int) and 200 <= e["status"] < 300)]
            for e in bad:
                print("SETUP %s: %s -> %s %s" % (name, e["file"], e["status"], e.get("detail", "")))
            if self.args.verbose:
                for e in log:
                    if e.get("changed"):
                        print("  setup %s: %s" % (e["file"], "; ".join(e["changed"])))
            for t in tests:
                if t.get("disabled"):
                    continue
                if t.get("mode") and t["mode"] not in self.modes:
                    continue
                self.run_test(name, suite, t, resources)
        self.summary()

    def run_test(self, sname, suite, t, resources):
        tname = t.get("name")
        rec = {"suite": sname, "test": tname, "operation": t.get("operation")}
        op = t.get("operation")
        resp_rel = t.get("response")
        for m in self.modes:
            if ("response:" + m) in t:
                resp_rel = t["response:" + m]
                break
        rec["request_file"], rec["response_file"] = t.get("request"), resp_rel
        missing = [r for r in (t.get("request"), resp_rel, t.get("profile")) if r and not os.path.exists(self.path(r))]
        if op not in OPERATIONS:
            return self.finish(rec, "SKIP", "operation %r not supported by this runner" % op)
        if missing:
            return self.finish(rec, "SKIP", "test data not in fixtures: %s" % ", ".join(missing))
        req = load_json(self.path(t["request"])) if t.get("request") else {"resourceType": "Parameters"}
        req, _ = r5_to_r4(req)
        prof_rel = t.get("profile") or ("parameters-default.json" if os.path.exists(self.path("parameters-default.json")) else None)
        if prof_rel:
            prof, _ = r5_to_r4(load_json(self.path(prof_rel)))
            req.setdefault("parameter", []).extend(prof.get("parameter", []))
        if self.args.tx_resource:
            for r in resources:
                req.setdefault("parameter", []).append({"name": "tx-resource", "resource": r})
        headers = {}
        if t.get("Accept-Language"):
            headers["Accept-Language"] = t["Accept-Language"]
        if t.get("Content-Language"):
            headers["Accept-Language"] = t["Content-Language"]
            headers["Content-Language"] = t["Content-Language"]
        rtype, opname = OPERATIONS[op]
        url = "%s/%s/%s" % (self.base, rtype, opname)
        st, raw = http("POST", url, req, headers)
        rec["http_status"] = st
        body = parse_body(raw)
        expected = load_json(self.path(resp_rel))
        rec["expected"] = expected
        rec["actual_raw"] = body if body is not None else raw.decode("utf-8", "replace")[:2000]
        if st == 0:
            return self.finish(rec, "FAIL", "no answer: %s" % raw.decode("utf-8", "replace"), "")
        if body is None:
            return self.finish(rec, "FAIL", "answer is not JSON (HTTP %d): %s" % (st, raw[:200].decode("utf-8", "replace")), "")
        actual = scrub(r4_to_r5(body))
        rec["actual"] = actual
        exp_is_oo = expected.get("resourceType") == "OperationOutcome"
        if t.get("http-code"):
            if not status_ok(t["http-code"], st):
                return self.finish(rec, "FAIL", "HTTP status %d, expected %s" % (st, t["http-code"]), "")
        elif exp_is_oo and st < 400:
            return self.finish(rec, "FAIL", "HTTP %d with %s, expected an error (OperationOutcome)" % (st, actual.get("resourceType")), "")
        elif not exp_is_oo and not (200 <= st < 300):
            return self.finish(rec, "FAIL", "HTTP %d: %s" % (st, oo_text(body)), "")
        cmp = Comparer(self.modes, self.variables)
        try:
            d = cmp.compare(expected, actual, expected.get("resourceType", ""))
        except ValueError as e:
            d = ("", str(e))
        if cmp.warnings:
            rec["warnings"] = cmp.warnings
        if d is None:
            return self.finish(rec, "PASS", "")
        diffs = []
        all_differences(Comparer(self.modes, self.variables), expected, actual,
                        expected.get("resourceType", ""), diffs)
        rec["differences"] = ["%s: %s" % x for x in diffs] or ["%s: %s" % d]
        return self.finish(rec, "FAIL", d[1], d[0])

    def finish(self, rec, status, msg, path=None):
        rec["status"] = status
        rec["message"] = msg
        if path is not None:
            rec["path"] = path
        self.results.append(rec)
        line = "%s %s/%s" % (status, rec["suite"], rec["test"])
        if msg:
            line += ": " + ("at %s: " % path if path else "") + msg
        print(line)
        if self.args.verbose and status == "FAIL":
            for d in rec.get("differences", [])[1:]:
                print("    also " + d)
        sys.stdout.flush()

    def summary(self):
        print("\nSummary")
        suites = []
        for r in self.results:
            if r["suite"] not in suites:
                suites.append(r["suite"])
        tot = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        for s in suites:
            c = {"PASS": 0, "FAIL": 0, "SKIP": 0}
            for r in self.results:
                if r["suite"] == s:
                    c[r["status"]] += 1
            for k in tot:
                tot[k] += c[k]
            print("  %-16s pass %3d  fail %3d  skip %3d" % (s, c["PASS"], c["FAIL"], c["SKIP"]))
        print("  %-16s pass %3d  fail %3d  skip %3d" % ("TOTAL", tot["PASS"], tot["FAIL"], tot["SKIP"]))
        if self.args.json:
            with open(self.args.json, "w") as f:
                json.dump({"base": self.base, "modes": self.modes, "setup": self.setup_log,
                           "results": self.results}, f, indent=1, default=_json_default, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser(description="Run HL7 tx ecosystem test cases against a FHIR R4 server")
    ap.add_argument("base_url")
    ap.add_argument("--suite", action="append", help="only this suite (repeatable)")
    ap.add_argument("--filter", help="only tests whose name contains TEXT")
    ap.add_argument("--modes", default="", help="comma-separated test modes (e.g. flat)")
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder with test-cases.json (default: %(default)s)")
    ap.add_argument("--json", help="write results to this file")
    ap.add_argument("--tx-resource", action="store_true", help="also send setup resources as tx-resource parameters")
    ap.add_argument("--no-setup", action="store_true", help="do not PUT the setup resources")
    ap.add_argument("--strict-upload", action="store_true",
                    help="PUT setup resources without 'Prefer: handling=lenient' (the server's validation may then refuse some)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    Runner(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
