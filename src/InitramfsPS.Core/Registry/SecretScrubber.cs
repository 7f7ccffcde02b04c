using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// The one place text from a registry passes through before it reaches a message, a verbose
    /// line or an exception: a registry (or a proxy before it) may repeat our Authorization header
    /// in a body, a reason phrase, a challenge or a redirect address.
    /// <para>
    /// <see cref="ServerText"/> is for every fragment a server wrote (reason phrases, error
    /// bodies, WWW-Authenticate parameters, realms, redirect addresses, exception messages that
    /// quote a response): it masks the secrets this client knows (the password, the base64
    /// <c>user:password</c>, <c>user:password</c>, every token received, each in its plain,
    /// JSON-escaped and URL-escaped forms, in any case), any run of token characters that shares
    /// 8 or more characters with one of them (a secret split across lines or fields), and whatever
    /// follows <c>Basic</c> or <c>Bearer</c> (quoted, escaped or not); it replaces control and
    /// format characters (a terminal escape sequence, a bidi override) and shortens the text.
    /// </para>
    /// <para>
    /// <see cref="Scrub"/> is the last pass over a whole message (our own words with server
    /// fragments in them): it masks the known secrets only, so words of ours such as "Basic auth"
    /// stay readable.
    /// </para>
    /// </summary>
    internal sealed class SecretScrubber
    {
        /// <summary>What a secret is replaced with.</summary>
        public const string Mask = "***";

        /// <summary>Secrets shorter than this are not masked: they would garble every message and protect nothing.</summary>
        private const int MinSecretLength = 4;

        /// <summary>Runs of token characters sharing this many characters with a secret are masked.</summary>
        private const int Window = 8;

        /// <summary>How much of one server fragment a message quotes.</summary>
        public const int MaxFragment = 300;

        // "Basic <x>", "Bearer <x>", 'Bearer" "<x>', "basic%20<x>", "Basic=<x>", 'Basic\u0020<x>'.
        private static readonly Regex AuthValue = new(
            @"\b(basic|bearer)(?:\s|%20|\\[nrt]|\\u0020|&quot;|[""'=:,+\\])+(?!\*\*\*)[A-Za-z0-9._~+/=%\\-]+",
            RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

        private static readonly Regex TokenRun = new(@"[A-Za-z0-9._~+/=%-]{8,}", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

        private readonly object gate = new();
        private volatile string[] forms = Array.Empty<string>();
        private volatile HashSet<string> windows = new(StringComparer.Ordinal);

        /// <summary>Adds the secrets of a credential: the password, <c>user:password</c> and its base64.</summary>
        public void AddCredential(RegistryCredential? credential)
        {
            if (credential is null)
            {
                return;
            }
            Add(credential.Password);
            Add(credential.Username + ":" + credential.Password);
            Add(credential.BasicValue());
        }

        /// <summary>Adds a token received, and each of its dot-separated parts (a JWT's claims and signature).</summary>
        public void AddToken(string? token)
        {
            if (string.IsNullOrEmpty(token))
            {
                return;
            }
            Add(token);
            foreach (string part in token.Split('.'))
            {
                if (part.Length >= Window)
                {
                    Add(part);
                }
            }
        }

        /// <summary>Adds one secret value; shorter ones than 4 characters are ignored.</summary>
        public void Add(string? secret)
        {
            if (secret is null || secret.Length < MinSecretLength)
            {
                return;
            }
            var variants = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
            {
                secret,
                secret.Replace("/", "\\/", StringComparison.Ordinal),
                JsonEncodedText.Encode(secret).ToString(),
                JsonEncodedText.Encode(secret).ToString().Replace("/", "\\/", StringComparison.Ordinal),
                JsonEncodedText.Encode(secret, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).ToString(),
                Uri.EscapeDataString(secret),
                WebUtility.UrlEncode(secret),
            };
            lock (gate)
            {
                var all = new HashSet<string>(forms, StringComparer.OrdinalIgnoreCase);
                all.UnionWith(variants);
                var newWindows = new HashSet<string>(windows, StringComparer.Ordinal);
                for (int i = 0; i + Window <= secret.Length; i++)
                {
                    newWindows.Add(secret.Substring(i, Window));
                }
                forms = all.OrderByDescending(s => s.Length).ToArray();
                windows = newWindows;
            }
        }

        /// <summary>
        /// A fragment a server wrote, fit to quote: secrets and authorization values masked, control
        /// characters replaced, at most <paramref name="max"/> characters.
        /// </summary>
        public string ServerText(string? text, int max = MaxFragment)
        {
            if (string.IsNullOrEmpty(text))
            {
                return string.Empty;
            }
            // Work on a bounded piece: enough to find a secret that straddles the cut.
            string s = text.Length > max + 4096 ? text[..(max + 4096)] : text;
            s = MaskKnown(s);
            try
            {
                s = AuthValue.Replace(s, m => m.Groups[1].Value + " " + Mask);
            }
            catch (RegexMatchTimeoutException)
            {
                return Mask;
            }
            s = MaskFragments(s);
            var sb = new StringBuilder(Math.Min(s.Length, max + 1));
            foreach (char c in s)
            {
                if (sb.Length >= max)
                {
                    sb.Append('…');
                    break;
                }
                if (c is '\r' or '\n' or '\t')
                {
                    sb.Append(' ');
                }
                else if (char.IsControl(c) || CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator)
                {
                    sb.Append('?');
                }
                else
                {
                    sb.Append(c);
                }
            }
            return sb.ToString();
        }

        /// <summary>A whole message with the known secrets masked (its own words left alone).</summary>
        public string Scrub(string? message)
        {
            if (string.IsNullOrEmpty(message))
            {
                return message ?? string.Empty;
            }
            return MaskFragments(MaskKnown(message));
        }

        /// <summary>Whether <paramref name="text"/> holds a known secret (or a piece of one).</summary>
        public bool Reveals(string? text) => !string.IsNullOrEmpty(text) && !string.Equals(Scrub(text), text, StringComparison.Ordinal);

        private string MaskKnown(string s)
        {
            foreach (string form in forms)
            {
                if (s.Contains(form, StringComparison.OrdinalIgnoreCase))
                {
                    s = s.Replace(form, Mask, StringComparison.OrdinalIgnoreCase);
                }
            }
            return s;
        }

        private string MaskFragments(string s)
        {
            var known = windows;
            if (known.Count == 0)
            {
                return s;
            }
            try
            {
                return TokenRun.Replace(s, m =>
                {
                    string run = m.Value;
                    for (int i = 0; i + Window <= run.Length; i++)
                    {
                        if (known.Contains(run.Substring(i, Window)))
                        {
                            return Mask;
                        }
                    }
                    return run;
                });
            }
            catch (RegexMatchTimeoutException)
            {
                return Mask;
            }
        }
    }
}
