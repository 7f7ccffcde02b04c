using System;
using System.Collections.Generic;
using InitramfsPS.Images;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// What the handlers of one <see cref="RegistryClient"/> share: the repository, the settings,
    /// the credential (looked up once, when a registry first asks), the scrubber that knows every
    /// secret seen, and the verbose output, which passes that scrubber.
    /// </summary>
    internal sealed class RegistrySession
    {
        private bool credentialLooked;

        public RegistrySession(ImageReference reference, RegistryOptions options)
        {
            Reference = reference;
            Options = options;
            string host = reference.ApiHost!;
            BaseUrl = PlainHttpHandler.Scheme(host, options.AllowPlainHttp) + "://" + host + "/v2/";
            var scopes = new List<string> { $"repository:{reference.Repository}:{(options.Push ? "pull,push" : "pull")}" };
            if (options.Push && options.MountFrom is { Length: > 0 } from && from != reference.Repository)
            {
                scopes.Add($"repository:{from}:pull");
            }
            Scopes = scopes;
            Scope = string.Join(" ", scopes);
            Credential = options.Credential;
            credentialLooked = options.Credential is not null;
            Secrets.AddCredential(Credential);
        }

        public ImageReference Reference { get; }

        /// <summary>The registry's name as messages give it.</summary>
        public string Registry => Reference.Registry!;

        public RegistryOptions Options { get; }

        public RegistryLimits Limits => Options.Limits;

        /// <summary>"https://host/v2/", or "http://" for a loopback host or with -AllowPlainHttp.</summary>
        public string BaseUrl { get; }

        /// <summary>The token scopes asked for: a pull of the repository, or a push with a pull of the repository blobs are mounted from.</summary>
        public IReadOnlyList<string> Scopes { get; }

        /// <summary>The scopes as one key (a token is kept per key).</summary>
        public string Scope { get; }

        public SecretScrubber Secrets { get; } = new();

        /// <summary>The credential in use; null before <see cref="EnsureCredential"/> found one, or when there is none.</summary>
        public RegistryCredential? Credential { get; private set; }

        /// <summary>Looks in the auth files once, when a registry first asks for credentials none were given for.</summary>
        public void EnsureCredential()
        {
            if (credentialLooked)
            {
                return;
            }
            credentialLooked = true;
            Credential = RegistryCredentials.Find(Registry);
            Secrets.AddCredential(Credential);
            if (Credential is not null)
            {
                Say($"Using credentials for {Registry}: {Credential}.");
            }
        }

        public void Say(string message) => Options.Verbose?.Invoke(Secrets.Scrub(message));
    }
}
