/* Verify buttons: check a published manifest or audit checkpoint in the browser.
 *
 * What is checked is exactly what `pseudogate verify-extract` and `pseudogate audit verify`
 * check for the signature: Ed25519 (Web Crypto API) over the UTF-8 bytes of
 * json.dumps(object without "signature", sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False), as Python writes it. The JSON is parsed here with its own small parser
 * so that numbers keep their kind (an integer 1 and a float 1.0 are written differently by
 * Python) and are re-written as Python writes them.
 */
(function () {
  'use strict';

  function fail(reason) { var e = new Error(reason); e.verdict = true; throw e; }

  // -- a JSON parser that keeps each number's literal -----------------------------------
  function parseJson(text) {
    var i = 0;
    function ws() { while (i < text.length && ' \t\n\r'.indexOf(text[i]) >= 0) i++; }
    function value() {
      ws();
      var c = text[i];
      if (c === '{') return object();
      if (c === '[') return array();
      if (c === '"') return string();
      if (c === '-' || (c >= '0' && c <= '9')) return number();
      if (text.startsWith('true', i)) { i += 4; return true; }
      if (text.startsWith('false', i)) { i += 5; return false; }
      if (text.startsWith('null', i)) { i += 4; return null; }
      fail('it is not valid JSON (unexpected character at position ' + i + ')');
    }
    function object() {
      var out = new Map();
      i++; ws();
      if (text[i] === '}') { i++; return out; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('it is not valid JSON (a key is expected at position ' + i + ')');
        var key = string(); ws();
        if (text[i] !== ':') fail('it is not valid JSON (":" expected at position ' + i + ')');
        i++;
        out.set(key, value()); ws();   // a repeated key: the last one wins, as in Python
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return out; }
        fail('it is not valid JSON (position ' + i + ')');
      }
    }
    function array() {
      var out = [];
      i++; ws();
      if (text[i] === ']') { i++; return out; }
      for (;;) {
        out.push(value()); ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return out; }
        fail('it is not valid JSON (position ' + i + ')');
      }
    }
    function string() {
      var m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(text.slice(i));
      if (!m) fail('it is not valid JSON (a bad string at position ' + i + ')');
      i += m[0].length;
      return JSON.parse(m[0]);
    }
    function number() {
      var m = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i));
      if (!m) fail('it is not valid JSON (a bad number at position ' + i + ')');
      i += m[0].length;
      return { number: m[0], integer: !m[1] && !m[2] };
    }
    var result = value(); ws();
    if (i !== text.length) fail('it is not valid JSON (extra text at position ' + i + ')');
    return result;
  }

  // -- Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) --
  function pythonFloat(x) {
    if (!isFinite(x)) fail('it holds a number that is not finite');
    if (x === 0) return (Object.is(x, -0) ? '-' : '') + '0.0';
    var sign = x < 0 ? '-' : '';
    var parts = Math.abs(x).toExponential().split('e');   // shortest round-trip digits
    var digits = parts[0].replace('.', '');
    var exponent = parseInt(parts[1], 10);
    var point = exponent + 1;   // digits d1 d2 ... with the decimal point after `point` digits
    if (point > -4 && point <= 16) {   // as CPython's repr: exponent when decpt <= -4 or > 16
      if (point <= 0) return sign + '0.' + '0'.repeat(-point) + digits;
      if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length) + '.0';
      return sign + digits.slice(0, point) + '.' + digits.slice(point);
    }
    var mantissa = digits[0] + (digits.length > 1 ? '.' + digits.slice(1) : '');
    var e = exponent < 0 ? '-' : '+';
    var magnitude = String(Math.abs(exponent));
    return sign + mantissa + 'e' + e + (magnitude.length < 2 ? '0' + magnitude : magnitude);
  }

  function canonical(v) {
    if (v === null) return 'null';
    if (v === true) return 'true';
    if (v === false) return 'false';
    if (typeof v === 'string') return JSON.stringify(v);
    if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
    if (v instanceof Map) {
      var keys = Array.from(v.keys()).sort(function (a, b) {
        var x = Array.from(a), y = Array.from(b);   // by code point, as Python sorts
        for (var k = 0; k < Math.min(x.length, y.length); k++) {
          var d = x[k].codePointAt(0) - y[k].codePointAt(0);
          if (d) return d;
        }
        return x.length - y.length;
      });
      return '{' + keys.map(function (k) { return JSON.stringify(k) + ':' + canonical(v.get(k)); }).join(',') + '}';
    }
    if (v.integer) return BigInt(v.number).toString();
    return pythonFloat(parseFloat(v.number));
  }

  function base64Bytes(text, what) {
    if (typeof text !== 'string' || !/^(?:[A-Za-z0-9+\/]{4})*(?:[A-Za-z0-9+\/]{2}==|[A-Za-z0-9+\/]{3}=)?$/.test(text)) {
      fail('its ' + what + ' is not base64');
    }
    var raw = atob(text), out = new Uint8Array(raw.length);
    for (var k = 0; k < raw.length; k++) out[k] = raw.charCodeAt(k);
    return out;
  }

  /** The signed bytes and the signature of a manifest or checkpoint (text as published). */
  function signedParts(kind, text) {
    var doc = parseJson(text);
    if (!(doc instanceof Map)) fail('it is not a JSON object');
    if (!doc.has('signature') || typeof doc.get('signature') !== 'string') fail('it has no signature');
    var signature = base64Bytes(doc.get('signature'), 'signature');
    var body = new Map(doc);
    body.delete('signature');
    var keyId = null;
    if (kind === 'manifest') {
      var ids = body.get('key_ids');
      if (!(ids instanceof Map) || typeof ids.get('signing') !== 'string') fail('it does not name its signing key (key_ids.signing)');
      keyId = ids.get('signing');
    } else {
      ['seq', 'hash', 'time'].forEach(function (f) { if (!body.has(f)) fail('it lacks the field ' + f); });
      if (body.size !== 3) fail('it has fields a checkpoint does not have');
    }
    return { bytes: new TextEncoder().encode(canonical(body)), signature: signature, keyId: keyId };
  }

  async function verifyText(kind, text, keys) {
    var parts = signedParts(kind, text);
    var candidates = parts.keyId === null ? Object.keys(keys) : [parts.keyId];
    if (parts.keyId !== null && !(parts.keyId in keys)) {
      fail('it names signing key ' + parts.keyId + ', which this register does not publish');
    }
    if (parts.signature.length !== 64) fail('its signature is not 64 bytes long, so it is not an Ed25519 signature');
    if (!(window.crypto && window.crypto.subtle)) {
      throw new Error('this browser cannot check signatures here (no Web Crypto API on this page)');
    }
    for (var n = 0; n < candidates.length; n++) {
      var key;
      try {
        key = await crypto.subtle.importKey('spki', base64Bytes(keys[candidates[n]], 'key'), { name: 'Ed25519' }, false, ['verify']);
      } catch (e) {
        throw new Error('this browser cannot check Ed25519 signatures (' + e.name + ')');
      }
      if (await crypto.subtle.verify({ name: 'Ed25519' }, key, parts.signature, parts.bytes)) {
        return candidates[n];
      }
    }
    fail('the signature does not match the contents: it was changed after it was signed, or it was not signed by this gateway');
  }

  function show(result, state, message) {
    result.textContent = message;
    result.classList.remove('register-verify__result--valid', 'register-verify__result--invalid');
    if (state === 'valid' || state === 'invalid') result.classList.add('register-verify__result--' + state);
    if (state) result.setAttribute('data-verdict', state);   // valid, invalid or error
    else result.removeAttribute('data-verdict');   // still checking
  }

  /** The ids of the published releases whose manifest has this signature, lowest first
   *  (a project's identical extracts made within one second have identical manifests). */
  function publishedReleases(text) {
    var signature, out = [];
    try { signature = parseJson(text).get('signature'); } catch (e) { return out; }
    document.querySelectorAll('.register-verify[data-verify-kind="manifest"]').forEach(function (box) {
      var source = box.querySelector('.register-json');
      try {
        if (source && parseJson(source.textContent).get('signature') === signature) {
          out.push(Number(box.getAttribute('data-verify-id')));
        }
      } catch (e) { /* a published manifest that does not parse is reported by its own button */ }
    });
    return out.sort(function (a, b) { return a - b; });
  }

  function whichRelease(ids) {
    if (!ids.length) return 'It is not among the releases listed on this page (the register may be older than the release).';
    if (ids.length === 1) return 'It is the manifest of release ' + ids[0] + ' below.';
    return 'It is the manifest of releases ' + ids.slice(0, -1).join(', ') + ' and ' + ids[ids.length - 1] +
      ' below (the same extract, released more than once).';
  }

  var MAX_MANIFEST_BYTES = 1024 * 1024;

  /** "Check a manifest you received": verify a local file, read by the browser, sent nowhere. */
  function initFileCheck(keys) {
    var input = document.querySelector('.register-check-file__input');
    var result = document.querySelector('.register-check-file__result');
    if (!input || !result) return;
    input.addEventListener('change', async function () {
      var file = input.files && input.files[0];
      if (!file) { show(result, null, ''); return; }
      show(result, null, 'Checking…');
      try {
        if (file.size > MAX_MANIFEST_BYTES) fail('the file is larger than 1 MB, far larger than a manifest');
        var text;
        try { text = await file.text(); } catch (e) { throw new Error('the browser could not read the file'); }
        var keyId = await verifyText('manifest', text, keys);
        show(result, 'valid', 'Valid: this manifest was signed by the gateway with key ' + keyId +
          ' and has not been changed since. ' + whichRelease(publishedReleases(text)));
      } catch (e) {
        if (e.verdict) show(result, 'invalid', 'Not valid: ' + e.message + '.');
        else show(result, 'error', 'Could not check: ' + e.message + '.');
      }
    });
  }

  function init() {
    var holder = document.getElementById('register-keys');
    var keys = holder ? JSON.parse(holder.textContent) : {};
    initFileCheck(keys);
    document.querySelectorAll('.register-verify').forEach(function (box) {
      var kind = box.getAttribute('data-verify-kind');
      var button = box.querySelector('.register-verify__button');
      var result = box.querySelector('.register-verify__result');
      var source = box.querySelector('.register-json');
      var what = kind === 'manifest' ? 'manifest' : 'checkpoint';
      button.addEventListener('click', async function () {
        show(result, null, 'Checking…');
        try {
          var keyId = await verifyText(kind, source.textContent, keys);
          show(result, 'valid', 'Valid: this ' + what + ' was signed by the gateway with key ' + keyId + ' and has not been changed since.');
        } catch (e) {
          if (e.verdict) show(result, 'invalid', 'Not valid: ' + e.message + '.');
          else show(result, 'error', 'Could not check: ' + e.message + '.');
        }
      });
    });
  }

  window.pseudogateRegister = { canonical: function (text) { return canonical(parseJson(text)); }, pythonFloat: pythonFloat };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
