using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Text.Json;
using InitramfsPS.Errors;

namespace InitramfsPS.Registry
{
    /// <summary>A user name and secret for one registry, and where they came from (never the secret itself in messages).</summary>
    internal sealed class RegistryCredential
    {
        /// <summary>Creates a credential.</summary>
        public RegistryCredential(string username, string password, string origin)
        {
            Username = username;
            Password = password;
            Origin = origin;
        }

        /// <summary>The user name.</summary>
        public string Username { get; }

        /// <summary>The password or token. Never written to any stream.</summary>
        internal string Password { get; }

        /// <summary>Where it came from: "-Credential", a file path, or a credential helper.</summary>
        public string Origin { get; }

        /// <summary>The value of a Basic Authorization header.</summary>
        internal string BasicValue() => Convert.ToBase64String(Encoding.UTF8.GetBytes(Username + ":" + Password));

        /// <summary>Names the user and the origin, never the secret.</summary>
        public override string ToString() => $"{Username} (from {Origin})";
    }

    /// <summary>
    /// Finds credentials where users already keep them, in the order the containers tools and
    /// Docker use: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, then Docker's
    /// config.json ($DOCKER_CONFIG or ~/.docker). In each file a registry's credHelpers entry
    /// wins, then its auths entry, then the file's credsStore.
    /// </summary>
    internal static class RegistryCredentials
    {
        /// <summary>The credential for <paramref name="registry"/>, or null for anonymous access.</summary>
        public static RegistryCredential? Find(string registry)
        {
            foreach (string file in AuthFiles())
            {
                if (!File.Exists(file))
                {
                    continue;
                }
                JsonDocument doc;
                try
                {
                    doc = JsonDocument.Parse(File.ReadAllBytes(file));
                }
                catch (JsonException ex)
                {
                    throw new InitramfsException("AuthFileInvalid", FailureKind.InvalidData, $"The credentials file '{file}' is not valid JSON: {ex.Message}", file, ex);
                }
                using (doc)
                {
                    var root = doc.RootElement;
                    if (root.ValueKind != JsonValueKind.Object)
                    {
                        continue;
                    }
                    if (Lookup(root, "credHelpers", registry) is { ValueKind: JsonValueKind.String } helper)
                    {
                        return FromHelper(helper.GetString()!, registry);
                    }
                    if (Lookup(root, "auths", registry) is { ValueKind: JsonValueKind.Object } auth && FromAuthEntry(auth, file) is { } found)
                    {
                        return found;
                    }
                    if (root.TryGetProperty("credsStore", out var store) && store.ValueKind == JsonValueKind.String && store.GetString() is { Length: > 0 } storeName)
                    {
                        var fromStore = FromHelper(storeName, registry);
                        if (fromStore is not null)
                        {
                            return fromStore;
                        }
                    }
                }
            }
            return null;
        }

        /// <summary>The auth files consulted, in order.</summary>
        public static IEnumerable<string> AuthFiles()
        {
            if (Environment.GetEnvironmentVariable("REGISTRY_AUTH_FILE") is { Length: > 0 } explicitFile)
            {
                yield return explicitFile;
            }
            if (Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") is { Length: > 0 } runtime)
            {
                yield return Path.Combine(runtime, "containers", "auth.json");
            }
            string dockerDir = Environment.GetEnvironmentVariable("DOCKER_CONFIG") is { Length: > 0 } d
                ? d
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".docker");
            yield return Path.Combine(dockerDir, "config.json");
        }

        private static JsonElement? Lookup(JsonElement root, string section, string registry)
        {
            if (!root.TryGetProperty(section, out var map) || map.ValueKind != JsonValueKind.Object)
            {
                return null;
            }
            foreach (var entry in map.EnumerateObject())
            {
                if (string.Equals(NormalizeKey(entry.Name), registry, StringComparison.OrdinalIgnoreCase))
                {
                    return entry.Value;
                }
            }
            return null;
        }

        /// <summary>Keys may be "https://index.docker.io/v1/", "host:port" or "http://host/": compare hosts.</summary>
        private static string NormalizeKey(string key)
        {
            string k = key;
            int scheme = k.IndexOf("://", StringComparison.Ordinal);
            if (scheme >= 0)
            {
                k = k[(scheme + 3)..];
            }
            int slash = k.IndexOf('/', StringComparison.Ordinal);
            if (slash >= 0)
            {
                k = k[..slash];
            }
            return k is "index.docker.io" or "registry-1.docker.io" or "registry.hub.docker.com" ? "docker.io" : k;
        }

        private static RegistryCredential? FromAuthEntry(JsonElement auth, string file)
        {
            if (auth.TryGetProperty("auth", out var encoded) && encoded.ValueKind == JsonValueKind.String && encoded.GetString() is { Length: > 0 } b64)
            {
                string decoded;
                try
                {
                    decoded = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
                }
                catch (FormatException)
                {
                    throw new InitramfsException("AuthFileInvalid", FailureKind.InvalidData, $"An 'auth' entry in '{file}' is not valid base64.", file);
                }
                int colon = decoded.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0)
                {
                    throw new InitramfsException("AuthFileInvalid", FailureKind.InvalidData, $"An 'auth' entry in '{file}' is not user:password.", file);
                }
                return new RegistryCredential(decoded[..colon], decoded[(colon + 1)..], file);
            }
            if (auth.TryGetProperty("username", out var u) && u.ValueKind == JsonValueKind.String
                && auth.TryGetProperty("password", out var p) && p.ValueKind == JsonValueKind.String)
            {
                return new RegistryCredential(u.GetString()!, p.GetString()!, file);
            }
            return null;
        }

        /// <summary>Runs <c>docker-credential-NAME get</c>, which reads the server on stdin and prints JSON.</summary>
        private static RegistryCredential? FromHelper(string name, string registry)
        {
            string program = "docker-credential-" + name;
            string server = registry == "docker.io" ? "https://index.docker.io/v1/" : registry;
            var start = new ProcessStartInfo(program, "get")
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            Process process;
            try
            {
                process = Process.Start(start) ?? throw new InvalidOperationException("no process");
            }
            catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                throw new InitramfsException("CredentialHelperFailed", FailureKind.NotFound,
                    $"The credential helper '{program}' named for {registry} cannot be started: {ex.Message}", program, ex);
            }
            using (process)
            {
                process.StandardInput.Write(server);
                process.StandardInput.Close();
                var output = process.StandardOutput.ReadToEndAsync();
                var error = process.StandardError.ReadToEndAsync();
                if (!process.WaitForExit(30_000))
                {
                    process.Kill(true);
                    throw new InitramfsException("CredentialHelperFailed", FailureKind.NotFound, $"The credential helper '{program}' did not answer within 30 s.", program);
                }
                if (process.ExitCode != 0)
                {
                    // Helpers say "credentials not found" this way: then the registry is tried anonymously.
                    return null;
                }
                try
                {
                    using var doc = JsonDocument.Parse(output.Result);
                    var root = doc.RootElement;
                    if (root.ValueKind != JsonValueKind.Object)
                    {
                        throw new JsonException("not a JSON object");
                    }
                    string? user = root.TryGetProperty("Username", out var un) && un.ValueKind == JsonValueKind.String ? un.GetString() : null;
                    string? secret = root.TryGetProperty("Secret", out var sc) && sc.ValueKind == JsonValueKind.String ? sc.GetString() : null;
                    _ = error.Result;
                    return user is null || secret is null ? null : new RegistryCredential(user, secret, "credential helper " + program);
                }
                catch (Exception ex) when (ex is JsonException or InvalidOperationException)
                {
                    throw new InitramfsException("CredentialHelperFailed", FailureKind.InvalidData, $"The credential helper '{program}' printed something other than JSON.", program);
                }
            }
        }
    }
}
