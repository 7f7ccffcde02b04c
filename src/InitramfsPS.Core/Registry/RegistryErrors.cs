using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Text.Json;
using InitramfsPS.Errors;
using InitramfsPS.IO;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Every failure of a registry request as the module's error, with a stable id: an answer that
    /// is not a success, a transport exception, and (<see cref="Contain"/>) whatever leaves a pull.
    /// Whatever a server wrote passes <see cref="SecretScrubber.ServerText"/> before it is quoted.
    /// </summary>
    internal sealed class RegistryErrors
    {
        private readonly RegistrySession session;

        public RegistryErrors(RegistrySession session) => this.session = session;

        private SecretScrubber Secrets => session.Secrets;

        public InitramfsException Refused(string? said = null)
        {
            string words = said is null ? string.Empty : $" It said: {said}.";
            var credential = session.Credential;
            return credential is null
                ? new InitramfsException("RegistryCredentialsRequired", FailureKind.Security,
                    $"{session.Registry} requires credentials for {session.Reference.Repository}; pass -Credential or log in (auth.json, ~/.docker/config.json).{words}", session.Registry)
                : new InitramfsException("RegistryCredentialsRefused", FailureKind.Security,
                    $"{session.Registry} refused the credentials of user '{credential.Username}' (from {credential.Origin}) for {session.Reference.Repository}.{words}", session.Registry);
        }

        public InitramfsException Unavailable(string why) =>
            new("RegistryUnavailable", FailureKind.NotFound,
                $"{session.Registry} could not be reached: {why}." +
                (session.BaseUrl.StartsWith("https:", StringComparison.Ordinal) ? " If it serves plain HTTP only, -AllowPlainHttp allows that (unencrypted, credentials included)." : string.Empty),
                session.Registry);

        public InitramfsException TooLarge(string label, int cap, long? announced) =>
            new("RegistryResponseTooLarge", FailureKind.LimitExceeded,
                $"{session.Registry} sent {label} {(announced is { } a ? $"as {Units.Bytes(a)}" : "without end")}; it is read whole, and at most {BodyReader.Cap(cap)} of it.",
                session.Registry);

        /// <summary>The error of an answer that is not a success, after <paramref name="attempts"/> attempts.</summary>
        public InitramfsException Failure(HttpResponseMessage response, string reason, string body, RegistryCall call, int attempts)
        {
            var status = response.StatusCode;
            var (code, said) = ErrorWords(body);
            string words = said.Length > 0 ? $" It said: {said}." : string.Empty;
            string answered = $"{(int)status} {(reason.Length > 0 ? reason : status.ToString())}";
            string repository = session.Reference.Repository!;
            if (call.ToTokenService)
            {
                return status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden
                    ? Refused(said.Length > 0 ? said : AuthChallenge.Words(response, Secrets))
                    : (int)status >= 500 || status == HttpStatusCode.TooManyRequests
                        ? Unavailable($"{call.Label} answered {answered} ({attempts} attempts){(said.Length > 0 ? "; it said: " + said : string.Empty)}")
                        : new InitramfsException("RegistryRequestFailed", FailureKind.InvalidData, $"{call.Label} answered {answered}.{words}", session.Registry);
            }
            switch (status)
            {
                case HttpStatusCode.Unauthorized:
                    return Refused(AuthChallenge.Words(response, Secrets) ?? (said.Length > 0 ? said : null));
                case HttpStatusCode.Forbidden:
                    return new InitramfsException("RegistryAccessDenied", FailureKind.Security,
                        $"{session.Registry} denied access to {repository}{(session.Credential is null ? " for anonymous pulls" : $" for user '{session.Credential.Username}'")}.{words}", session.Registry);
                case HttpStatusCode.NotFound when code == "NAME_UNKNOWN":
                    return new InitramfsException("RepositoryNotFound", FailureKind.NotFound,
                        $"The repository '{repository}' does not exist on {session.Registry}.", repository);
                case HttpStatusCode.NotFound when code is "MANIFEST_UNKNOWN" or "" && !call.What.StartsWith("sha", StringComparison.Ordinal):
                    return new InitramfsException("TagNotFound", FailureKind.NotFound,
                        $"The tag '{call.What}' does not exist in {session.Registry}/{repository}.", call.What);
                case HttpStatusCode.NotFound:
                    return new InitramfsException("ManifestNotFound", FailureKind.NotFound,
                        $"{session.Registry}/{repository} has no {(code == "BLOB_UNKNOWN" ? "blob" : "manifest")} {call.What}.", call.What);
                default:
                    return (int)status >= 500 || status == HttpStatusCode.TooManyRequests
                        ? Unavailable($"{call.Label} answered {answered} ({attempts} attempts){(said.Length > 0 ? "; it said: " + said : string.Empty)}")
                        : new InitramfsException("RegistryRequestFailed", FailureKind.InvalidData,
                            $"{session.Registry} answered {answered} for {call.Label}.{words}", call.What);
            }
        }

        /// <summary>A string property of a JSON object; null for anything else (a hostile answer must not throw InvalidOperationException).</summary>
        public static string? StringProperty(JsonElement e, string name) =>
            e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        /// <summary>
        /// The first error code of a registry error body (used to tell errors apart; compared, never
        /// shown as is) and the codes and messages of its first three errors, scrubbed, to quote.
        /// </summary>
        private (string Code, string Said) ErrorWords(string body)
        {
            string code = string.Empty;
            var said = new List<string>();
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array)
                {
                    foreach (var e in errors.EnumerateArray().Take(3))
                    {
                        string? c = StringProperty(e, "code");
                        string? m = StringProperty(e, "message");
                        if (code.Length == 0 && c is not null)
                        {
                            code = c;
                        }
                        string text = string.Join(": ", new[] { c, m }.Where(x => !string.IsNullOrEmpty(x)));
                        if (text.Length > 0)
                        {
                            said.Add(Secrets.ServerText(text, 200));
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
            }
            return (code, string.Join("; ", said));
        }

        /// <summary>What went wrong, in words fit for a message: .NET's words quote the server at times, so they are scrubbed.</summary>
        public string Explain(Exception ex)
        {
            if (ex is TransferStalledException)
            {
                return ex.Message;
            }
            if (RetryRules.IsConnectTimeout(ex))
            {
                return $"no connection within {RegistryLimits.Format(session.Limits.ConnectTimeout)}";
            }
            var parts = new List<string>();
            for (var e = ex; e is not null && parts.Count < 4; e = e.InnerException)
            {
                string m = e.Message.Replace(", see inner exception.", string.Empty, StringComparison.Ordinal).TrimEnd('.');
                if (m.Length > 0 && !parts.Contains(m))
                {
                    parts.Add(m);
                }
            }
            return Secrets.ServerText(string.Join(": ", parts), 400);
        }

        /// <summary>See <see cref="RegistryClient.Contain"/>.</summary>
        public Exception Contain(Exception ex)
        {
            switch (ex)
            {
                case InitramfsException ie:
                    return Clean(ie);
                case AggregateException { InnerExceptions.Count: 1 } ae:
                    return Contain(ae.InnerException!);
                // The transport's failures (not the cache's: a file error there stays what it is).
                case HttpRequestException or HttpIOException or TransferStalledException or System.Net.Sockets.SocketException
                    or IOException { InnerException: System.Net.Sockets.SocketException } or TimeoutException or OperationCanceledException:
                    return Unavailable(Explain(ex));
                case UriFormatException or NotSupportedException:
                    return new InitramfsException("RegistryRequestFailed", FailureKind.InvalidData,
                        $"A request to {session.Registry} could not be made: {Explain(ex)}.", session.Registry);
                default:
                    return ex;
            }
        }

        private InitramfsException Clean(InitramfsException ex)
        {
            if (!Secrets.Reveals(ex.ToString()) && !(ex.Target is string t && Secrets.Reveals(t)))
            {
                return ex;
            }
            var inner = ex.InnerException is InitramfsException ie ? Clean(ie) : null;
            object? target = ex.Target is string s ? Secrets.Scrub(s) : ex.Target;
            return new InitramfsException(ex.ErrorId, ex.Kind, Secrets.Scrub(ex.Message), target, inner);
        }
    }
}
