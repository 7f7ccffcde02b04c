using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using InitramfsPS.Errors;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Init
{
    /// <summary>Where the /init of an archive comes from.</summary>
    public enum InitOrigin
    {
        /// <summary>There is no /init and nothing to generate one from.</summary>
        None,

        /// <summary>The rootfs had it as it came: from the image's layers or an imported archive.</summary>
        Image,

        /// <summary>The user put it there: Set-InitramfsInit -Path or -Content, or Add-InitramfsFile.</summary>
        User,

        /// <summary>Generated from the image config (or Set-InitramfsInit -Command): runs the workload and powers off.</summary>
        Generated,
    }

    /// <summary>What an export does about /init: keep the rootfs's own, generate one, or refuse.</summary>
    internal sealed class InitPlan
    {
        /// <summary>Where /init comes from.</summary>
        public InitOrigin Origin { get; init; }

        /// <summary>What /init runs, for people: the workload's command line, or the program /init is.</summary>
        public string? Command { get; init; }

        /// <summary>The /init the export adds, when the rootfs has none and the image config names a command.</summary>
        public RootfsEntry? Generated { get; init; }

        /// <summary>Environment entries the generated /init could not set.</summary>
        public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();

        /// <summary>Why no /init could be generated although the image names a command (no /bin/sh, unknown user, ...).</summary>
        public InitramfsException? Problem { get; init; }

        /// <summary>The warning an export writes when it generates /init.</summary>
        public string? GeneratedNote => Generated is null ? null : $"The rootfs has no /init: wrote one generated from the image config that runs {Command} and powers the VM off when it exits.";
    }

    /// <summary>
    /// Decides the /init of an archive. A container image has no /init, but its config says what
    /// `docker run` would run; an export writes the /init Set-InitramfsInit would generate from it,
    /// so that the one-line pipeline boots. Only a rootfs with no /init and no command is refused.
    /// </summary>
    internal static class InitPlanner
    {
        /// <summary>The host name of a generated /init unless one is given.</summary>
        public const string DefaultHostname = "initramfs";

        /// <summary>
        /// The spec of the /init generated from the config of the image <paramref name="rootfs"/> came
        /// from, with <paramref name="command"/> instead of its Entrypoint and Cmd when given; null for
        /// a rootfs of no image and no command. Names the config by its digest only, so the same image
        /// gives the same /init whether it came from a registry, a layout or a docker save archive.
        /// </summary>
        public static InitSpec? Spec(Rootfs rootfs, IReadOnlyList<string>? command = null, string hostname = DefaultHostname)
        {
            var image = rootfs.Image;
            if (image is null && command is null)
            {
                return null;
            }
            string config = image is null ? string.Empty : $"the image config {image.ConfigDigest}";
            return new InitSpec
            {
                Command = command ?? image!.Config.Command,
                Env = image?.Config.Env ?? Array.Empty<string>(),
                WorkingDir = image?.Config.WorkingDir,
                User = image?.Config.User,
                Hostname = hostname,
                Origin = command is null ? config : "-Command" + (image is null ? string.Empty : $" (environment of {config})"),
            };
        }

        /// <summary>A generated /init as the entry Set-InitramfsInit and Export-Initramfs put into a rootfs.</summary>
        public static RootfsEntry Entry(string script, string source) => new()
        {
            Path = "/init",
            Type = EntryType.File,
            Mode = 0x1ED,
            Size = Encoding.UTF8.GetByteCount(script),
            Content = new InlineContent(Encoding.UTF8.GetBytes(script)),
            Source = source,
        };

        /// <summary>The workload's command line as a shell would read it.</summary>
        public static string CommandLine(IEnumerable<string> command) => string.Join(' ', command.Select(InitGenerator.Quote));

        /// <summary>What an export of <paramref name="rootfs"/> does about /init (the rootfs is not changed).</summary>
        public static InitPlan Plan(Rootfs rootfs)
        {
            var init = rootfs.GetEntry("/init");
            if (init is not null)
            {
                return Existing(rootfs, init);
            }
            var spec = Spec(rootfs);
            if (spec is null || spec.Command.Count == 0)
            {
                return new InitPlan { Origin = InitOrigin.None };
            }
            string commandLine = CommandLine(spec.Command);
            var warnings = new List<string>();
            try
            {
                string script = InitGenerator.Generate(rootfs, spec, warnings);
                return new InitPlan
                {
                    Origin = InitOrigin.Generated,
                    Command = commandLine,
                    Generated = Entry(script, "generated by Export-Initramfs"),
                    Warnings = warnings,
                };
            }
            catch (InitramfsException ex) when (!ex.ContentMismatch)
            {
                return new InitPlan
                {
                    Origin = InitOrigin.None,
                    Command = commandLine,
                    Problem = new InitramfsException(ex.ErrorId, ex.Kind,
                        $"The rootfs has no /init, and none can be generated to run {commandLine} from the image config: {ex.Message}", ex.Target, ex),
                };
            }
        }

        private static InitPlan Existing(Rootfs rootfs, RootfsEntry init)
        {
            var markers = InitGenerator.ReadMarkers(rootfs);
            if (markers.Program is not null)
            {
                return new InitPlan { Origin = InitOrigin.Generated, Command = markers.Command ?? markers.Program };
            }
            var origin = init.Source.StartsWith("host:", StringComparison.Ordinal) || init.Source == SetByUser
                ? InitOrigin.User
                : InitOrigin.Image;
            var target = rootfs.Resolve("/init");
            string program = target is null || target.Path == "/init" ? "/init" : $"/init ({target.Path})";
            string? interpreter = null;
            if (target?.Content is { } content)
            {
                try
                {
                    using var reader = new ContentReader();
                    interpreter = InitCheck.Interpreter(reader.ReadPrefix(content, 256));
                }
                catch (Exception ex) when (ex is System.IO.IOException or InitramfsException { ContentMismatch: false })
                {
                    // The bootability check reports an unreadable /init; here it only loses the detail.
                }
            }
            return new InitPlan
            {
                Origin = origin,
                Command = interpreter is null ? program : $"{program}, a script for {RootfsPath.Printable(interpreter)}",
            };
        }

        /// <summary>The Source of an /init given as text to Set-InitramfsInit -Content.</summary>
        public const string SetByUser = "Set-InitramfsInit -Content";
    }
}
