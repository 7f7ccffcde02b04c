using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;

namespace InitramfsPS.Images
{
    /// <summary>The parts of an image config that decide how the image runs.</summary>
    public sealed class ImageConfig
    {
        /// <summary>Operating system (<c>linux</c>).</summary>
        public string Os { get; init; } = "linux";

        /// <summary>Architecture (<c>amd64</c>).</summary>
        public string Architecture { get; init; } = string.Empty;

        /// <summary>Architecture variant (<c>v8</c>).</summary>
        public string? Variant { get; init; }

        /// <summary>ENTRYPOINT.</summary>
        public string[] Entrypoint { get; init; } = Array.Empty<string>();

        /// <summary>CMD.</summary>
        public string[] Cmd { get; init; } = Array.Empty<string>();

        /// <summary>ENV, as NAME=value strings.</summary>
        public string[] Env { get; init; } = Array.Empty<string>();

        /// <summary>WORKDIR.</summary>
        public string? WorkingDir { get; init; }

        /// <summary>USER.</summary>
        public string? User { get; init; }

        /// <summary>LABELs.</summary>
        public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

        /// <summary>When the image was created, if the config says.</summary>
        public DateTimeOffset? Created { get; init; }

        /// <summary>rootfs.diff_ids: digests of the uncompressed layers, in order.</summary>
        public IReadOnlyList<Digest> DiffIds { get; init; } = Array.Empty<Digest>();

        /// <summary>The command line the image runs: Entrypoint followed by Cmd.</summary>
        public string[] Command => Entrypoint.Concat(Cmd).ToArray();

        /// <summary>Parses an OCI or Docker image config.</summary>
        public static ImageConfig Parse(JsonElement root)
        {
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new Errors.InitramfsException("ManifestInvalid", Errors.FailureKind.InvalidData, $"The image config is not a JSON object but {root.ValueKind}.", null);
            }
            JsonElement config = root.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.Object ? c : default;
            var diffIds = new List<Digest>();
            if (root.TryGetProperty("rootfs", out var rootfs) && rootfs.ValueKind == JsonValueKind.Object
                && rootfs.TryGetProperty("diff_ids", out var ids) && ids.ValueKind == JsonValueKind.Array)
            {
                foreach (var id in ids.EnumerateArray())
                {
                    diffIds.Add(Digest.Parse(id.ValueKind == JsonValueKind.String ? id.GetString() : id.GetRawText(), "diff_id"));
                }
            }
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            if (config.ValueKind == JsonValueKind.Object && config.TryGetProperty(nameof(Labels), out var l) && l.ValueKind == JsonValueKind.Object)
            {
                foreach (var p in l.EnumerateObject())
                {
                    labels[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.ToString();
                }
            }
            return new ImageConfig
            {
                Os = Str(root, "os") ?? "linux",
                Architecture = Str(root, "architecture") ?? string.Empty,
                Variant = Str(root, "variant"),
                Entrypoint = Strings(config, "Entrypoint"),
                Cmd = Strings(config, "Cmd"),
                Env = Strings(config, "Env"),
                WorkingDir = Str(config, "WorkingDir"),
                User = Str(config, "User"),
                Labels = labels,
                Created = Str(root, "created") is { } s && DateTimeOffset.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var d) ? d : null,
                DiffIds = diffIds,
            };
        }

        private static string? Str(JsonElement e, string name) =>
            e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        private static string[] Strings(JsonElement e, string name) =>
            e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
                ? v.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!).ToArray()
                : Array.Empty<string>();

        /// <inheritdoc/>
        public override string ToString() => Command.Length == 0 ? "(no command)" : string.Join(' ', Command);
    }
}
