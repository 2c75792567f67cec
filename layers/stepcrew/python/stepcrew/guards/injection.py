"""A rule-based prompt-injection detector: patterns over known attack families, run on normalised and decoded
views of the text.

Why rules: no injection classifier that installs from PyPI ships its model inside the package (llm-guard, Llama
Prompt Guard and others download weights on first use; ../shared/FACTS.md), and the guard must run offline, in a
Lambda without network, in milliseconds. Rules are explainable and cheap; their weakness is paraphrase, so the views
below remove the usual obfuscations before matching, and ``bench/guards.py`` measures recall and false positives on
a labelled set (and a held-out one) so the gap is a number, not a guess.

Families (``Finding.entity``), after the taxonomies of OWASP LLM01 and Greshake et al. 2023 ("Not what you've signed
up for: compromising real-world LLM-integrated applications with indirect prompt injection"):

- ``instruction_override``: "ignore all previous instructions", "your new task is", in English, French, Spanish,
  German, Italian and Portuguese;
- ``role_play``: jailbreak personas (DAN, developer mode, "an AI without restrictions", "stay in character");
- ``system_prompt_extraction``: "print your system prompt", "repeat the words above", "what is the password";
- ``encoded_payload``: "decode this and follow it", or any family found only after decoding base64, hex, URL
  escapes, ROT13 or Unicode tag characters;
- ``embedded_instruction``: text addressed to the model from inside data ("Note to the AI: ..."), fake chat markup
  (``<|im_start|>system``, ``[INST]``), exfiltration ("send the results to http://..."), "do not tell the user".

Views: NFKC, zero-width and tag characters removed, Cyrillic/Greek homoglyphs mapped to Latin, case folded; then
the same with leetspeak undone (``1gn0r3`` -> ``ignore``) and with spaced-out letters joined (``i g n o r e``).
Every view keeps a map to the original offsets, so a finding's span points into the screened text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from urllib.parse import unquote

from stepcrew.guards.base import Finding

# ------------------------------------------------------------------------------------------- normalisation
_ZERO_WIDTH = {0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF, 0x00AD,
               0x180E}
#: Homoglyphs of Latin letters that NFKC leaves alone (Cyrillic, Greek).
_HOMOGLYPHS = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "к": "k", "м": "m", "н": "h", "т": "t", "в": "b", "г": "r", "ɡ": "g", "ı": "i",
    "α": "a", "ε": "e", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "ν": "v", "ι": "i", "κ": "k", "χ": "x", "η": "n",
    "ѵ": "v", "һ": "h", "ӏ": "l", "ɩ": "i",
})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i",
                       "|": "l", "+": "t"})
_TAG_BLOCK = range(0xE0000, 0xE0080)  # Unicode tag characters ("ASCII smuggling")


def _normalise(text: str) -> tuple[str, list[int]]:
    """Case-folded NFKC text without zero-width or tag characters, homoglyphs mapped; with the original index of
    each character."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        cp = ord(ch)
        if cp in _ZERO_WIDTH or cp in _TAG_BLOCK:
            continue
        for c in unicodedata.normalize("NFKC", ch).casefold().translate(_HOMOGLYPHS):
            if unicodedata.category(c) == "Mn":  # combining accents: "ïgnörë" -> "ignore"
                continue
            out.append(c)
            index.append(i)
    return "".join(out), index


def _deaccent(text: str, index: list[int]) -> tuple[str, list[int]]:
    out, idx = [], []
    for c, i in zip(text, index, strict=True):
        for d in unicodedata.normalize("NFKD", c):
            if unicodedata.category(d) != "Mn":
                out.append(d)
                idx.append(i)
    return "".join(out), idx


_WORDISH = re.compile(r"[a-z0-9@$!|+]+")


def _unleet(text: str, index: list[int]) -> tuple[str, list[int]]:
    """Leetspeak undone inside tokens that mix letters and leet digits/symbols (``1gn0r3``); plain numbers stay."""
    def fix(m: re.Match[str]) -> str:
        tok = m.group(0)
        return tok.translate(_LEET) if re.search(r"[a-z]", tok) and re.search(r"[0-9@$!|+]", tok) else tok
    return _WORDISH.sub(fix, text), index  # same length: the index still holds


_SPACED = re.compile(r"(?<![a-z])(?:[a-z][ .\-_*/]{1,2}){2,}[a-z](?![a-z])")


def _join_spaced(text: str, index: list[int]) -> tuple[str, list[int]]:
    """Spaced-out letters joined (``i g n o r e`` -> ``ignore``); runs of words stay separated by double gaps."""
    out, idx, pos = [], [], 0
    for m in _SPACED.finditer(text):
        out.append(text[pos:m.start()])
        idx.extend(index[pos:m.start()])
        for j in range(m.start(), m.end()):
            if text[j].isalpha():
                out.append(text[j])
                idx.append(index[j])
        pos = m.end()
    out.append(text[pos:])
    idx.extend(index[pos:])
    return "".join(out), idx


# ------------------------------------------------------------------------------------------- patterns
_QUAL = (r"(?:all|any|every|each|of|the|your|my|our|their|these|those|this|that|previous|previously|prior|above|"
         r"earlier|preceding|foregoing|initial|original|old|older|existing|former|system|safety|current|given|"
         r"provided|default|developer|developers|openai|anthropic|assistant|assistant's|you|were|have|been|was|"
         r"given|told|pre-?set|preset|standing|base|core|built-in|baseline|last|first|other|such|and|or|"
         r"programmed|hidden|content|moderation|ethical|internal|existing|above-mentioned|aforementioned)")
_OVERRIDE_VERB = (r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overriding|overrule|bypass|"
                  r"bypassing|abandon|discard|neglect|nullify|ditch|scrap|throw out|set aside|put aside|"
                  r"pay no attention to|do not follow|don't follow|dont follow|stop following|no longer follow|"
                  r"stop obeying|do not obey|don't obey|circumvent|disobey)")
_OVERRIDE_NOUN = (r"(?:instructions?|instructed|prompts?|rules?|directions?|directives?|guidelines?|guidance|"
                  r"constraints?|restrictions?|commands?|orders?|system message|messages|programming|policies|"
                  r"polic(?:y|ies)|safeguards?|guardrails?|training|conditioning|limitations?|"
                  r"protocols?|everything|context|ethics|boundaries)")

_FAMILIES: list[tuple[str, float, re.Pattern[str], tuple[str, ...] | None]] = []


def _leading_words(pattern: str) -> tuple[str, ...] | None:
    """The literal words one of which any match of ``pattern`` starts with, for a cheap ``in`` pre-check: the
    alternatives of a leading ``\\b(?:a|b|...)`` group, each cut at its first regex syntax. None when the pattern
    does not start that way or an alternative has no literal start (the pattern then always runs)."""
    lit = re.match(r"\\b([a-z0-9']{2,})", pattern)
    if lit:
        word = lit.group(1)
        if pattern[lit.end():lit.end() + 1] in ("?", "*", "{"):
            word = word[:-1]
        return (word,) if len(word) >= 2 else None
    for opener in ("<", "\\[", "!\\["):
        if pattern.startswith(opener):
            return (opener.replace("\\", ""),)
    m = re.match(r"\\b\(\?:", pattern)
    if not m:
        return None
    depth, i, alts, cur = 1, m.end(), [], []
    while i < len(pattern) and depth:
        ch = pattern[i]
        if ch == "\\":
            cur.append(pattern[i:i + 2])
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if depth == 1 and ch == "|":
            alts.append("".join(cur))
            cur = []
        elif depth:
            cur.append(ch)
        i += 1
    alts.append("".join(cur))
    if pattern[i:i + 1] in ("?", "*", "{"):
        return None  # an optional leading group: nothing is required
    words = []
    for alt in alts:
        lit = re.match(r"[a-z0-9'\-]+", alt)
        word = lit.group(0) if lit else ""
        if alt[len(word):len(word) + 1] in ("?", "*", "{"):
            word = word[:-1]  # the last character is optional
        if len(word) < 2:
            return None
        words.append(word)
    return tuple(dict.fromkeys(words))


def _add(family: str, score: float, *patterns: str) -> None:
    for p in patterns:
        _FAMILIES.append((family, score, re.compile(p, re.IGNORECASE | re.DOTALL), _leading_words(p)))


_add("instruction_override", 0.95,
     rf"\b{_OVERRIDE_VERB}\b(?:[\s,]+{_QUAL}\b){{0,5}}[\s,]+{_OVERRIDE_NOUN}\b",
     r"\b(?:ignore|disregard|forget)\b[\s,]+(?:everything|anything|all|what)\b[\s,]+(?:(?:you|i|we|it|that|has|"
     r"have|had|was|were|been|said|told|wrote|written|stated|mentioned|given|before|above|prior|earlier|previously|"
     r"so far|up to now|until now|here|in|this|the|conversation|chat|message|prompt)\b[\s,]*){1,6}",
     r"\b(?:new|updated|revised|real|actual|true|secret|hidden|override|replacement|additional)\s+"
     r"(?:instructions?|directives?|orders|task|objective|mission|commands?|rules)\s*(?::|are|is\b|follow)",
     r"\byour\s+(?:new|real|actual|true|only|sole)\s+(?:task|job|goal|purpose|objective|mission|instructions?|"
     r"role|function)\b",
     r"\bfrom\s+now\s+on\b[\s,]*(?:you|your|only|always|never|respond|reply|answer|act|do|say|output|ignore)",
     r"\b(?:instead|rather)\b[\s,]+(?:you\s+(?:must|should|will|shall)|just\s+)?(?:output|respond|reply|say|print|"
     r"write|answer|return|type|repeat|tell)\b[^.\n]{0,40}(?:[\"'“]|\bonly\b|\bexactly\b|\bthe\s+(?:word|phrase|"
     r"text|following)\b|\bhacked\b|\bpwned\b)",
     r"\b(?:the\s+)?(?:above|previous|prior|earlier|preceding|original|initial)\s+(?:instructions?|text|prompt|"
     r"rules|messages?|context)\s+(?:is|are|was|were|has been|have been)\s+(?:fake|wrong|void|invalid|cancel+ed|"
     r"obsolete|revoked|outdated|a test|not real|superseded|replaced|deprecated|null|overridden)",
     r"\b(?:stop|end|abort|halt|cease|quit)\b\s+(?:the|your|this|all|what)\s+(?:\w+\s+){0,2}?(?:task|analysis|"
     r"work|job|instructions?|doing)\b[^.\n]{0,30}\b(?:and|then|now|instead)\b",
     r"\b(?:say|print|output|write|respond with|reply with|answer with)\s+[\"'“]?(?:i have been pwned|hacked|"
     r"pwned|i am free|access granted)",
     r"\bdo\s+not\s+(?:perform|do|complete|answer|carry out)\s+(?:the|your|this)\s+(?:\w+\s+)?(?:task|request|"
     r"analysis|question)\b[^.\n]{0,30}\b(?:instead|but|rather)\b",
     # other languages
     r"\bignor(?:e|ez|er|a|ar|ad|iere|ieren|ier|i)\b[\s,]+(?:(?:toutes?|tous|les|des|tes|vos|todas?|todos|las|"
     r"los|tus|sus|alle|die|deine|ihre|tutte|le|tue|as|os|suas)\s+){0,3}(?:instructions|consignes|règles|regles|"
     r"indications|instrucciones|reglas|indicaciones|órdenes|ordenes|anweisungen|instruktionen|regeln|befehle|"
     r"vorgaben|istruzioni|regole|instruções|instrucoes|regras)",
     r"\b(?:oublie|oubliez|olvida|olvidad|olvide|vergiss|vergessen\s+sie|dimentica|esqueça|esqueca)\b[\s,]+"
     r"(?:\w+\s+){0,3}(?:instructions|consignes|règles|instrucciones|reglas|anweisungen|regeln|istruzioni|"
     r"instruções|instrucoes|regras|tout|todo|alles)",
     r"\b(?:nouvelles\s+instructions|nuevas\s+instrucciones|neue\s+anweisungen|nuove\s+istruzioni|"
     r"novas\s+instruções)\b",
     )

_add("role_play", 0.95,
     r"\bdo\s+anything\s+now\b", r"\b(?:developer|dev|debug|god|sudo|admin|jailbreak|jailbroken|unrestricted|"
     r"unfiltered|uncensored|evil|chaos|opposite|dan|stan|dude|maximum|freedom|unlocked)\s+mode\b",
     r"\bjailbr(?:eak|oken|eaking)\b",
     r"\b(?:unfiltered|uncensored|unrestricted|unaligned|amoral|unethical|unbound|unchained|unhinged|evil|rogue|"
     r"lawless|immoral|malicious|no-limits|limitless|jailbroken|free)\s+(?:ai|a\.i\.|assistant|model|chatbot|bot|"
     r"version|persona|character|llm|gpt|entity|intelligence|system|twin|alter ego)\b",
     r"\b(?:without|no|free\s+(?:of|from)|freed\s+from|not\s+bound\s+by|unbound\s+by|beyond|outside|ignoring|"
     r"zero)\s+(?:any\s+|all\s+|the\s+(?:usual\s+)?|your\s+|typical\s+|ethical\s+|moral\s+|content\s+|safety\s+)*"
     r"(?:ethical|moral|safety|content|usual|openai|anthropic)?\s*(?:restrictions|restraints|filters|filtering|"
     r"limitations|limits|censorship|rules|guidelines|ethics|morals|morality|policies|constraints|boundaries|"
     r"safeguards|guardrails)\b[^.\n]{0,80}\b(?:you|ai|assistant|model|pretend|act|answer|respond|reply|persona|"
     r"character|mode|role)\b",
     r"\b(?:you|assistant|ai|model|chatbot)\b[^.\n]{0,60}\b(?:without|no|free\s+(?:of|from)|freed\s+from|not\s+bound"
     r"\s+by|unbound\s+by|beyond)\s+(?:any\s+|all\s+|the\s+|your\s+|ethical\s+|moral\s+|content\s+|safety\s+)*"
     r"(?:restrictions|restraints|filters|filtering|limitations|limits|censorship|rules|guidelines|ethics|morals|"
     r"morality|policies|constraints|boundaries|safeguards|guardrails)\b",
     r"\b(?:pretend|imagine|act|behave|roleplay|role-play|role\s+play|play\s+the\s+(?:role|part)|simulate|become|"
     r"embody|impersonate|transform\s+into)\b[^.\n]{0,60}\b(?:no|without|free|freed|unbound|never\s+refuses?|"
     r"can\s+do\s+anything|anything\s+goes|answers?\s+(?:anything|everything|any\s+question)|does\s+not\s+care|"
     r"doesn't\s+care|not\s+bound|hacker|evil|villain|criminal|malicious|unrestricted|unfiltered|uncensored)\b",
     r"\byou\s+are\s+(?:now|no\s+longer|not)\s+(?:an?\s+|the\s+|in\s+)?(?:\w+\s+){0,2}?(?:ai|assistant|chatgpt|"
     r"claude|gpt|language\s+model|llm|bound|restricted|limited|model|chatbot|dan|free|mode|unrestricted|"
     r"jailbroken|persona|character)\b",
     r"\b(?:stay|remain|keep)\s+in\s+character\b", r"\b(?:never|don't|do\s+not)\s+break\s+character\b",
     r"\b(?:my\s+)?(?:dead|late|deceased)\s+(?:grandma|grandmother|grandfather|grandpa)\b[^.\n]{0,80}\b(?:used\s+to|"
     r"would)\b",
     r"\bmachiavellian\b", r"\b(?:anti-?gpt|betterdan|chaosgpt|evilbot|devmode|dev-mode)\b",
     r"\bhypothetical(?:ly)?\b[^.\n]{0,80}\b(?:no|without)\s+(?:rules|restrictions|limits|filters|ethics)\b",
     r"\b(?:two|2)\s+(?:responses|answers)\b[^.\n]{0,80}\b(?:one\s+(?:normal|filtered|censored)|jailbroken|dan|"
     r"developer|unfiltered)\b",
     r"\b(?:enable|activate|enter|switch\s+(?:to|into)|turn\s+on)\s+(?:\w+\s+){0,2}?(?:mode|persona)\b[^.\n]{0,40}"
     r"\b(?:no|without|unrestricted|unfiltered|anything|all)\b",
     )
_add("role_play", 0.9, r"(?<![a-z])DAN(?![a-z])")  # checked case-sensitively on the original (see _scan_raw)

_REVEAL = (r"(?:reveal|show|print|display|output|repeat|recite|tell|give|share|leak|dump|expose|write\s+out|"
           r"spell\s+out|list|paste|echo|return|provide|disclose|translate|summari[sz]e|copy|reproduce|type\s+out|"
           r"read\s+(?:out|back)|state|quote|describe|explain|confirm|what\s+(?:is|are|was|were)|what's)")
_add("system_prompt_extraction", 0.95,
     rf"\b{_REVEAL}\b\s+(?:me\s+|us\s+)?(?:\w+\s+){{0,4}}?(?:system|initial|original|hidden|secret|internal|"
     r"developer|confidential|first|pre-?|starting|opening|setup|base|underlying|full|complete|exact|entire|"
     r"verbatim)\s*(?:prompts?|instructions?|messages?|directives|rules|configuration|context|guidelines|"
     r"programming|system\s+prompt)\b",
     rf"\b{_REVEAL}\b\s+(?:me\s+|us\s+)?(?:your|the)\s+(?:\w+\s+){{0,2}}?(?:prompt|instructions|rules\s+you|"
     r"guidelines\s+you|directives|programming)\b",
     r"\bwhat\s+(?:were|have)\s+you\s+(?:been\s+)?(?:told|instructed|programmed|asked|configured|given)\b",
     r"\b(?:repeat|print|output|copy|recite|echo|write|show|display|reproduce|return|list|type)\b\s+(?:back\s+)?"
     r"(?:\w+\s+){0,3}?(?:words|text|everything|content|lines|sentences|tokens|characters|instructions|"
     r"messages?)\s+(?:\w+\s+){0,2}?(?:above|before|preceding|prior|so\s+far|earlier|at\s+the\s+(?:start|"
     r"beginning))\b",
     r"\b(?:starting|beginning|start)\s+(?:with|from)\s+[\"'“]?(?:you\s+are|your\s+role|system)\b",
     r"\beverything\s+(?:above|before)\s+(?:this|the)\s+(?:line|message|point|text)\b",
     r"\byour\s+(?:system|hidden|initial|secret|original|internal|developer|pre)\s*-?\s*prompt\b",
     r"\b(?:pre-?prompt|meta-?prompt)\b",
     rf"\b{_REVEAL}\b\s+(?:me\s+|us\s+)?(?:\w+\s+){{0,3}}?(?:password|passphrase|secret\s+(?:key|word|code)|"
     r"api\s+keys?|credentials|access\s+keys?|private\s+key)\b",
     r"\b(?:spell|encode|reverse|hint\s+at|give\s+(?:me\s+)?(?:a\s+)?hint\s+(?:for|about))\b[^.\n]{0,30}"
     r"\bpassword\b",
     r"\b(?:ignore|bypass)\b[^.\n]{0,40}\bpassword\b",
     r"\b(?:montre|affiche|révèle|revele|muestra|revela|zeige|gib)\b[^.\n]{0,40}\b(?:prompt|instructions|"
     r"instrucciones|anweisungen)\b",
     )

_add("encoded_payload", 0.9,
     r"\b(?:decode|decipher|decrypt|unscramble|reverse|translate|convert|interpret|base64[- ]?decode|rot13|"
     r"unhex)\b[^.\n]{0,80}\b(?:and|then|to)\b[^.\n]{0,20}\b(?:follow|execute|run|obey|do|perform|carry\s+out|"
     r"apply|act\s+on|comply|implement|answer|respond)\b",
     r"\b(?:follow|execute|run|obey|carry\s+out|act\s+on|comply\s+with|do)\b[^.\n]{0,40}\b(?:decoded|base64|"
     r"base-64|hex|hexadecimal|rot13|rot-13|encoded|ciphered|encrypted|obfuscated|binary|morse|reversed)\b",
     r"\b(?:the\s+following|this)\s+(?:is\s+)?(?:base64|base-64|hex|rot13|encoded|binary|morse)\b[^.\n]{0,40}"
     r"\b(?:instructions?|commands?|message|prompt|task)\b",
     )

_MODEL = (r"(?:ai|a\.i\.|assistant|chatbot|model|llm|gpt|chatgpt|claude|gemini|copilot|agent|bot|language\s+model|"
          r"ai\s+model|ai\s+assistant|ai\s+agent|analyst\s+bot|reader|summari[sz]er|automated\s+system)")
_add("embedded_instruction", 0.95,
     rf"\b(?:note|message|instructions?|attention|important|reminder|memo|notice|directive|order|command|p\.?s\.?)"
     rf"\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?{_MODEL}s?\b",
     rf"\b(?:dear|hey|hello|hi|attention|psst|yo)\s+(?:the\s+)?{_MODEL}\b",
     rf"(?:^|[\n\r\"'>:;|,\[\(\{{]|\.\s)\s*(?:the\s+)?{_MODEL}s?\s*[,:!-]+\s*(?:please\s+)?(?:ignore|disregard|"
     r"forget|you\s+must|you\s+should|you\s+will|make\s+sure|do\s+not|don't|now|instead|stop|include|add|insert|"
     r"append|send|email|forward|output|print|say|respond|reply|tell|recommend|rate|write|mention|classify|"
     r"summari[sz]e|report|conclude|state|claim|remember|execute|run|call|visit|open)\b",
     rf"\bif\s+you\s+are\s+(?:an?\s+|the\s+)?{_MODEL}\b",
     rf"\b(?:when|while|as|once|after|before)\s+(?:you|the\s+{_MODEL}|an?\s+{_MODEL}|{_MODEL}s)\s+(?:are\s+)?"
     r"(?:read|reads|reading|see|sees|seeing|process|processes|processing|summari[sz]e|summari[sz]es|"
     r"summari[sz]ing|analy[sz]e|analy[sz]es|analy[sz]ing|parse|parses|parsing|encounter|encounters|"
     r"encountering|get\s+to|reach)\s+(?:this|these|the\s+following|it)\b",
     r"<\|?\s*(?:im_start|im_end|system|endoftext|start_header_id|eot_id|begin_of_text)\s*\|?>",
     r"\[/?\s*(?:inst|sys|system)\s*\]", r"<<\s*/?\s*sys\s*>>",
     r"(?:^|[\n\r\"'>|])\s*(?:#{1,6}|\*{2,3}|-{2,}|={2,}|\[)?\s*(?:system|developer|admin|root)\s*(?:message|"
     r"prompt|instruction|instructions|note|override|notice|alert|update|command)?\s*\]?\s*[:>]\s*(?:you|ignore|"
     r"new|the|from|disregard|forget|override|all|always|never|do|reveal|respond|output)\b",
     r"</?\s*(?:system|instructions?|prompt|admin|sys|developer|assistant_instructions|hidden)\s*>",
     r"\b(?:begin|start|end)\s+(?:of\s+)?(?:system|admin|new|hidden|secret|developer)\s+(?:prompt|instructions?|"
     r"message|override|block)\b",
     r"\b(?:admin|administrator|root|developer|sudo|system|operator|superuser)\s+(?:override|command|access|"
     r"instruction|instructions|directive|privileges)\b\s*[:!-]",
     r"\b(?:send|email|e-mail|mail|forward|post|upload|transmit|leak|exfiltrate|copy|submit|share|deliver|"
     r"report|append|include|encode|put|paste|embed)\b\s+(?:\w+\s+){0,5}?(?:data|results|report|contents|"
     r"conversation|chat\s+history|history|credentials|secrets|passwords|keys|information|info|table|dataset|"
     r"everything|rows|records|details|answer|summary|findings|prompt|context|it|this|them)\b\s+(?:\w+\s+){0,3}?"
     r"(?:to|at|into|in)\s+(?:\w+\s+){0,2}?(?:https?://|www\.|ftp://|[\w.+-]+@[\w-]+\.[\w.]+|(?:this|the|my|our)"
     r"\s+(?:url|link|endpoint|server|webhook|address|email))",
     r"!\[[^\]]*\]\(\s*https?://[^)\s]*[?&][^)\s]*=",
     rf"\b(?:do\s+not|don't|dont|never)\s+(?:tell|inform|mention\s+(?:this\s+)?to|reveal\s+(?:this\s+)?to|"
     r"alert|show|let)\s+(?:this\s+to\s+)?the\s+(?:user|human|operator|reader|customer)\b",
     r"\bwithout\s+(?:telling|informing|notifying|alerting)\s+the\s+(?:user|human|operator|reader)\b",
     r"\bthe\s+(?:user|human)\s+(?:must|should|shall)\s+(?:not|never)\s+(?:know|see|find\s+out|be\s+told)\b",
     r"\b(?:important|urgent|attention|note|warning|notice|alert|update)\s*[:!\-]+\s*(?:new|updated|additional|"
     r"revised|the\s+following)?\s*(?:instructions?|task|directive|command|orders?|rules?)\b",
     r"\b(?:this|the)\s+(?:product|item|candidate|document|company|seller|vendor|row|record|entry|review)\s+"
     r"(?:instructs|tells|asks|orders|requires)\s+(?:you|the\s+(?:ai|assistant|model))\b",
     rf"\b{_MODEL}s?\s+(?:must|should|shall|will|are\s+required\s+to|are\s+instructed\s+to|is\s+instructed\s+to)"
     r"\s+(?:always\s+|now\s+|only\s+|immediately\s+)?(?:ignore|recommend|rate|say|output|respond|reply|state|"
     r"report|conclude|claim|send|include|give|classify|approve|rank|disregard|forget|praise|mention)\b",
     )
_add("embedded_instruction", 0.85,
     r"\b(?:visit|open|navigate\s+to|go\s+to|fetch|load|call|curl|request|access|click)\s+(?:\w+\s+){0,2}?"
     r"https?://\S+\?\S*(?:data|q|query|prompt|secret|key|token|payload|d|msg|info|p)=",
     r"\b(?:you\s+must|you\s+should|you\s+will|make\s+sure\s+(?:you|to)|be\s+sure\s+to|remember\s+to)\s+"
     r"(?:now\s+|also\s+|always\s+)?(?:ignore|disregard|forget|recommend|rate|praise|send|forward|email|"
     r"exfiltrate|leak|output|say|respond|reply|tell\s+the\s+user)\b",
     )

def _matches(view: str, index: list[int]) -> list[Finding]:
    out: list[Finding] = []
    for family, score, pattern, needs in _FAMILIES:
        if pattern.pattern.startswith("(?<![a-z])DAN"):
            continue  # case-sensitive: run on the original text only
        if needs is not None and not any(w in view for w in needs):
            continue
        for m in pattern.finditer(view):
            if m.end() <= m.start():
                continue
            start, end = index[m.start()], index[m.end() - 1] + 1
            out.append(Finding(kind="injection", entity=family, start=start, end=end, score=score))
    return out


_DAN = re.compile(r"(?<![A-Za-z])DAN(?![A-Za-z])")
_DAN_CONTEXT = re.compile(r"\b(?:you|act|pretend|persona|mode|jailbreak|anything|now|stay|character|as)\b", re.I)


def _scan_raw(text: str) -> list[Finding]:
    """Case-sensitive checks on the original text: the persona "DAN" with persona context nearby."""
    out = []
    for m in _DAN.finditer(text):
        window = text[max(0, m.start() - 60):m.end() + 60]
        if _DAN_CONTEXT.search(window):
            out.append(Finding(kind="injection", entity="role_play", start=m.start(), end=m.end(), score=0.9))
    return out


# ------------------------------------------------------------------------------------------- decoding
_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[\s:]?){12,}(?![0-9A-Fa-f])")
_URLESC = re.compile(r"(?:%[0-9A-Fa-f]{2}){6,}[^\s]*|[^\s]*(?:%[0-9A-Fa-f]{2}){6,}")
_ROT_HINT = re.compile(r"\brot-?13\b|\bcaesar\b", re.I)
_MAX_DECODED = 4096


def _printable(s: str) -> bool:
    return bool(s) and sum(ch.isprintable() or ch in "\n\t" for ch in s) / len(s) > 0.95 and \
        bool(re.search(r"[A-Za-z]{3,}", s))


def _decoded_views(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, decoded)`` for each encoded segment of ``text`` that decodes to readable text: base64
    (standard and URL-safe), hex, URL escapes, Unicode tag characters; and ROT13 of the whole text when ROT13 is
    named or nothing else was found."""
    views: list[tuple[int, int, str]] = []
    for m in _B64.finditer(text):
        token = m.group(0)
        if not re.search(r"[a-z]", token) or not re.search(r"[A-Z0-9+/]", token):
            continue
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decoder(token + "=" * (-len(token) % 4))
                s = raw.decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                continue
            if _printable(s):
                views.append((m.start(), m.end(), s[:_MAX_DECODED]))
                break
    for m in _HEX.finditer(text):
        try:
            s = bytes.fromhex(re.sub(r"[\s:]", "", m.group(0))).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if _printable(s):
            views.append((m.start(), m.end(), s[:_MAX_DECODED]))
    for m in _URLESC.finditer(text):
        s = unquote(m.group(0))
        if s != m.group(0) and _printable(s):
            views.append((m.start(), m.end(), s[:_MAX_DECODED]))
    tags = [(i, chr(ord(ch) - 0xE0000)) for i, ch in enumerate(text) if ord(ch) in _TAG_BLOCK]
    if tags:
        views.append((tags[0][0], tags[-1][0] + 1, "".join(c for _, c in tags)))
    if _ROT_HINT.search(text):
        views.append((0, len(text), codecs.decode(text, "rot13")))
    return views


# ------------------------------------------------------------------------------------------- the detector
def _views(text: str) -> list[tuple[str, list[int]]]:
    base, index = _normalise(text)
    views = [(base, index)]
    flat = _deaccent(base, index)
    if flat[0] != base:
        views.append(flat)
    leet = _unleet(*flat)
    if leet[0] != flat[0]:
        views.append(leet)
    spaced = _join_spaced(*leet)
    if spaced[0] != leet[0]:
        views.append(spaced)
    return views


def _merge(findings: list[Finding]) -> list[Finding]:
    """One finding per family and overlapping region (the highest score, the union of the spans), by start."""
    out: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.entity, f.start, -f.end)):
        last = out[-1] if out else None
        if last is not None and last.entity == f.entity and f.start < last.end:
            out[-1] = last.model_copy(update={"end": max(last.end, f.end), "score": max(last.score, f.score)})
        else:
            out.append(f)
    return sorted(out, key=lambda f: (f.start, f.entity))


def detect(text: str, *, _depth: int = 0) -> list[Finding]:
    """Injection findings in ``text`` (see the module docstring): spans index into ``text``. Pure and
    deterministic; about 1 ms per KB here. Decoded segments are scanned once more (no deeper nesting than two)."""
    if not text:
        return []
    found: list[Finding] = list(_scan_raw(text))
    for view, index in _views(text):
        found.extend(_matches(view, index))
    if _depth < 2:
        for start, end, decoded in _decoded_views(text):
            inner = detect(decoded, _depth=_depth + 1)
            if inner:
                found.append(Finding(kind="injection", entity="encoded_payload", start=start, end=end,
                                     score=max(f.score for f in inner)))
    return _merge(found)


__all__ = ["detect"]
