using System;
using System.Collections.Generic;
using System.Linq;
using System.Net.Http;
using InitramfsPS.Errors;

namespace InitramfsPS.Registry
{
    /// <summary>Reading a WWW-Authenticate challenge: its parameters, its words for a message, and whether its realm is fit to send credentials to.</summary>
    internal static class AuthChallenge
    {
        /// <summary>The key="value" parameters of a challenge (keys without case); a malformed rest is dropped.</summary>
        public static Dictionary<string, string> Parse(string parameter)
        {
            var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            int i = 0;
            while (i < parameter.Length)
            {
                while (i < parameter.Length && (parameter[i] == ',' || char.IsWhiteSpace(parameter[i])))
                {
                    i++;
                }
                int eq = parameter.IndexOf('=', i);
                if (eq < 0)
                {
                    break;
                }
                string key = parameter[i..eq].Trim();
                i = eq + 1;
                string value;
                if (i < parameter.Length && parameter[i] == '"')
                {
                    int end = parameter.IndexOf('"', i + 1);
                    end = end < 0 ? parameter.Length : end;
                    value = parameter[(i + 1)..end];
                    i = end + 1;
                }
                else
                {
                    int end = parameter.IndexOf(',', i);
                    end = end < 0 ? parameter.Length : end;
                    value = parameter[i..end].Trim();
                    i = end;
                }
                result[key] = value;
            }
            return result;
        }

        /// <summary>The error and error_description of a 401's challenge, as the server wrote them (scrubbed), or null.</summary>
        public static string? Words(HttpResponseMessage response, SecretScrubber secrets)
        {
            var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
            if (challenge?.Parameter is not { } parameter)
            {
                return null;
            }
            var p = Parse(parameter);
            string words = string.Join(": ", new[] { p.GetValueOrDefault("error"), p.GetValueOrDefault("error_description") }.Where(w => !string.IsNullOrEmpty(w)));
            return words.Length == 0 ? null : secrets.ServerText(words);
        }

        /// <summary>
        /// The realm of a Bearer challenge, fit to send credentials to: an absolute http or https
        /// address, and plain HTTP only on this machine or with -AllowPlainHttp.
        /// </summary>
        public static Uri CheckRealm(string? realm, RegistrySession session)
        {
            var secrets = session.Secrets;
            if (realm is null || !Uri.TryCreate(realm, UriKind.Absolute, out var uri))
            {
                throw new InitramfsException("RegistryAuthRealmInvalid", FailureKind.InvalidData,
                    $"{session.Registry} sent a Bearer challenge without a valid realm{(realm is null ? string.Empty : " ('" + secrets.ServerText(realm, 200) + "')")}.", session.Registry);
            }
            if (uri.Scheme is not ("http" or "https"))
            {
                throw new InitramfsException("RegistryAuthRealmInvalid", FailureKind.InvalidData,
                    $"{session.Registry} sent a Bearer challenge whose realm {secrets.ServerText(uri.GetLeftPart(UriPartial.Path), 200)} is not an http or https address; nothing was sent there.", session.Registry);
            }
            if (uri.Scheme == "http" && !PlainHttpHandler.IsLoopback(uri.Authority) && !session.Options.AllowPlainHttp)
            {
                throw new InitramfsException("RegistryAuthRealmInvalid", FailureKind.Security,
                    $"{session.Registry} sent a Bearer challenge whose realm {secrets.ServerText(uri.GetLeftPart(UriPartial.Path), 200)} is plain HTTP; nothing was sent there. " +
                    "-AllowPlainHttp allows it (unencrypted: credentials and tokens included).", session.Registry);
            }
            return uri;
        }
    }
}
