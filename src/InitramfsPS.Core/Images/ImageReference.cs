using System;
using System.Text.RegularExpressions;
using InitramfsPS.Errors;
using InitramfsPS.IO;

namespace InitramfsPS.Images
{
    /// <summary>Where an image reference points.</summary>
    public enum ImageTransport
    {
        /// <summary>An OCI distribution registry (<c>alpine:3.20</c>, <c>ghcr.io/o/r@sha256:…</c>).</summary>
        Registry,
        /// <summary>An OCI image layout directory (<c>oci:dir[:tag|@digest]</c>).</summary>
        OciLayout,
        /// <summary>A <c>docker save</c> archive (<c>docker-archive:file[:name:tag]</c>).</summary>
        DockerArchive,
    }

    /// <summary>
    /// A parsed image reference. Registry references follow the grammar of the distribution
    /// project's reference package: <c>alpine</c> means <c>docker.io/library/alpine:latest</c>.
    /// </summary>
    public sealed class ImageReference
    {
        /// <summary>The registry that Docker Hub short names mean.</summary>
        public const string DockerHub = "docker.io";

        private static readonly Regex Component = new(@"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*\z", RegexOptions.CultureInvariant);
        private static readonly Regex TagPattern = new(@"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\z", RegexOptions.CultureInvariant);
        private static readonly Regex HostPattern = new(@"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?\z", RegexOptions.CultureInvariant);

        private ImageReference(ImageTransport transport, string original)
        {
            Transport = transport;
            Original = original;
        }

        /// <summary>The transport.</summary>
        public ImageTransport Transport { get; }

        /// <summary>The text the user gave.</summary>
        public string Original { get; }

        /// <summary>Registry host[:port] (registry references only).</summary>
        public string? Registry { get; private set; }

        /// <summary>Repository path, e.g. <c>library/alpine</c> (registry references only).</summary>
        public string? Repository { get; private set; }

        /// <summary>Tag, or within a docker archive the <c>name:tag</c> to pick.</summary>
        public string? Tag { get; private set; }

        /// <summary>Manifest digest, when the reference pins one.</summary>
        public Digest? Digest { get; private set; }

        /// <summary>Host path of a layout directory or archive file.</summary>
        public string? Path { get; private set; }

        /// <summary>For a docker archive, the index of the image to pick (<c>:@0</c>).</summary>
        public int? ArchiveIndex { get; private set; }

        /// <summary>The host that serves a registry's API (<c>docker.io</c> is served by <c>registry-1.docker.io</c>).</summary>
        public string? ApiHost => Registry == DockerHub ? "registry-1.docker.io" : Registry;

        /// <summary>Parses any supported reference form, throwing a clear error for anything else.</summary>
        public static ImageReference Parse(string text)
        {
            if (string.IsNullOrWhiteSpace(text))
            {
                throw Invalid(text, "the reference is empty");
            }
            // Spaces around a pasted reference are trimmed; a newline or another control character
            // is refused (a reference read whole from a file ends in one), as is anything else the
            // grammar has no place for.
            int control = text.AsSpan().IndexOfAnyInRange('\0', '\x1f');
            if (control < 0)
            {
                control = text.IndexOf('\x7f', StringComparison.Ordinal);
            }
            if (control >= 0)
            {
                throw Invalid(text, $"it contains a control character (U+{(int)text[control]:X4}) at position {control + 1}");
            }
            text = text.Trim(' ');
            if (text.StartsWith("oci:", StringComparison.Ordinal))
            {
                return ParseLayout(text);
            }
            if (text.StartsWith("docker-archive:", StringComparison.Ordinal))
            {
                return ParseArchive(text);
            }
            string rest = text.StartsWith("docker://", StringComparison.Ordinal) ? text["docker://".Length..] : text;
            return ParseRegistry(text, rest);
        }

        /// <summary>Parses a registry reference (<c>[host[:port]/]repo[:tag][@digest]</c>).</summary>
        public static ImageReference ParseRegistry(string original, string text)
        {
            var r = new ImageReference(ImageTransport.Registry, original);
            string name = text;
            int at = text.IndexOf('@', StringComparison.Ordinal);
            if (at >= 0)
            {
                if (!Images.Digest.TryParse(text[(at + 1)..], out var digest))
                {
                    throw Invalid(original, $"'{Printable.Of(text[(at + 1)..])}' is not a valid digest");
                }
                r.Digest = digest;
                name = text[..at];
            }
            int lastSlash = name.LastIndexOf('/');
            int colon = name.LastIndexOf(':');
            if (colon > lastSlash)
            {
                string tag = name[(colon + 1)..];
                if (!TagPattern.IsMatch(tag))
                {
                    throw Invalid(original, $"'{Printable.Of(tag)}' is not a valid tag");
                }
                r.Tag = tag;
                name = name[..colon];
            }
            if (name.Length == 0)
            {
                throw Invalid(original, "the repository name is empty");
            }
            int firstSlash = name.IndexOf('/', StringComparison.Ordinal);
            string first = firstSlash < 0 ? name : name[..firstSlash];
            string repository;
            if (firstSlash >= 0 && (first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost" || first.StartsWith('[')))
            {
                if (!HostPattern.IsMatch(first))
                {
                    throw Invalid(original, $"'{Printable.Of(first)}' is not a valid registry host");
                }
                r.Registry = first == "index.docker.io" ? DockerHub : first;
                repository = name[(firstSlash + 1)..];
            }
            else
            {
                r.Registry = DockerHub;
                repository = name;
            }
            if (r.Registry == DockerHub && !repository.Contains('/', StringComparison.Ordinal))
            {
                repository = "library/" + repository;
            }
            foreach (string part in repository.Split('/'))
            {
                if (!Component.IsMatch(part))
                {
                    string why = !string.Equals(part.ToLowerInvariant(), part, StringComparison.Ordinal) && Component.IsMatch(part.ToLowerInvariant())
                        ? "repository names must be lowercase"
                        : $"'{Printable.Of(part)}' is not a valid repository name component";
                    throw Invalid(original, why);
                }
            }
            if (repository.Length > 255)
            {
                throw Invalid(original, "the repository name is longer than 255 characters");
            }
            r.Repository = repository;
            if (r.Tag is null && r.Digest is null)
            {
                r.Tag = "latest";
            }
            return r;
        }

        private static ImageReference ParseLayout(string text)
        {
            var r = new ImageReference(ImageTransport.OciLayout, text);
            string rest = text["oci:".Length..];
            int at = rest.LastIndexOf('@');
            if (at > 0 && Images.Digest.TryParse(rest[(at + 1)..], out var digest))
            {
                r.Digest = digest;
                rest = rest[..at];
            }
            else
            {
                // As skopeo does: the directory ends at the first colon; what follows is the tag.
                int colon = rest.IndexOf(':', StringComparison.Ordinal);
                if (colon >= 0)
                {
                    string tag = rest[(colon + 1)..];
                    if (tag.Length == 0)
                    {
                        throw Invalid(text, "the tag after ':' is empty");
                    }
                    r.Tag = tag;
                    rest = rest[..colon];
                }
            }
            if (rest.Length == 0)
            {
                throw Invalid(text, "the layout directory is missing (expected oci:<dir>[:<tag>|@<digest>])");
            }
            r.Path = rest;
            return r;
        }

        private static ImageReference ParseArchive(string text)
        {
            var r = new ImageReference(ImageTransport.DockerArchive, text);
            string rest = text["docker-archive:".Length..];
            int colon = rest.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                string pick = rest[(colon + 1)..];
                rest = rest[..colon];
                if (pick.StartsWith('@'))
                {
                    if (!int.TryParse(pick[1..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index))
                    {
                        throw Invalid(text, $"'{pick}' is not an image index (expected @0, @1, …)");
                    }
                    r.ArchiveIndex = index;
                }
                else if (pick.Length > 0)
                {
                    // Validate the name:tag with the registry grammar so typos fail here, not later.
                    var named = ParseRegistry(pick, pick);
                    r.Tag = named.FamiliarName;
                }
            }
            if (rest.Length == 0)
            {
                throw Invalid(text, "the archive file is missing (expected docker-archive:<file>[:<name:tag>])");
            }
            r.Path = rest;
            return r;
        }

        /// <summary>The fully qualified <c>registry/repository:tag</c> form (registry references).</summary>
        public string CanonicalName => $"{Registry}/{Repository}:{Tag ?? "latest"}";

        /// <summary>The short form Docker prints (<c>alpine:3.20</c> for a Docker Hub library image).</summary>
        public string FamiliarName
        {
            get
            {
                string repo = Registry == DockerHub
                    ? (Repository!.StartsWith("library/", StringComparison.Ordinal) ? Repository["library/".Length..] : Repository!)
                    : $"{Registry}/{Repository}";
                return $"{repo}:{Tag ?? "latest"}";
            }
        }

        /// <summary>The canonical text of the reference.</summary>
        public override string ToString() => Transport switch
        {
            ImageTransport.Registry => $"{Registry}/{Repository}" + (Tag is null ? string.Empty : ":" + Tag) + (Digest is { } d ? "@" + d : string.Empty),
            ImageTransport.OciLayout => "oci:" + Path + (Tag is null ? string.Empty : ":" + Tag) + (Digest is { } d2 ? "@" + d2 : string.Empty),
            _ => "docker-archive:" + Path + (Tag is null ? (ArchiveIndex is { } i ? ":@" + i.ToString(System.Globalization.CultureInfo.InvariantCulture) : string.Empty) : ":" + Tag),
        };

        private static InitramfsException Invalid(string text, string why) =>
            new("InvalidReference", FailureKind.InvalidArgument, $"'{Printable.Of(text)}' is not a valid image reference: {why}.", text);
    }
}
