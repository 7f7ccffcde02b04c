using System;
using System.Collections.Generic;
using System.Text;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Init
{
    /// <summary>A reason the kernel could not start a rootfs's /init.</summary>
    internal sealed record InitProblem(string ErrorId, string Message);

    /// <summary>
    /// Checks what the kernel needs to start userspace from an initramfs: an /init that resolves
    /// (symlinks followed inside the rootfs) to an executable regular file, and for a script, an
    /// interpreter that exists. Without these a diskless microVM panics at boot.
    /// </summary>
    internal static class InitCheck
    {
        /// <summary>The problems found; empty when /init looks startable.</summary>
        public static List<InitProblem> Check(Rootfs rootfs)
        {
            var problems = new List<InitProblem>();
            var init = rootfs.GetEntry("/init");
            if (init is null)
            {
                problems.Add(new("InitMissing", "The rootfs has no /init, and no image config with an Entrypoint or Cmd to generate one from, so the kernel would have nothing to run and panic. Set one with Set-InitramfsInit -Path, -Content or -Command."));
                return problems;
            }
            var target = rootfs.Resolve("/init");
            if (target is null)
            {
                problems.Add(new("InitNotFound", $"/init is a symlink to '{init.LinkTarget}', which does not resolve inside the rootfs."));
                return problems;
            }
            if (target.Type != EntryType.File)
            {
                problems.Add(new("InitNotFile", $"/init resolves to {target.Path}, a {target.Type}, not a regular file."));
                return problems;
            }
            if (!target.IsExecutable)
            {
                problems.Add(new("InitNotExecutable", $"/init ({target.Path}, mode {target.OctalMode}) is not executable; the kernel cannot run it."));
                return problems;
            }
            if (target.Content is { } content)
            {
                using var reader = new ContentReader();
                byte[] head;
                try
                {
                    content.Validate();
                    head = reader.ReadPrefix(content, 256);
                }
                catch (Errors.InitramfsException ex) when (!ex.ContentMismatch)
                {
                    problems.Add(new(ex.ErrorId, ex.Message));
                    return problems;
                }
                string? interpreter = Interpreter(head);
                if (interpreter is not null)
                {
                    var resolved = interpreter.StartsWith('/') ? rootfs.Resolve(interpreter) : null;
                    if (resolved is null || !resolved.IsExecutable)
                    {
                        problems.Add(new("InitInterpreterMissing",
                            $"/init is a script for '{RootfsPath.Printable(interpreter)}', which {(resolved is null ? "does not exist in" : "is not an executable file in")} the rootfs."));
                    }
                }
            }
            return problems;
        }

        /// <summary>The interpreter a <c>#!</c> line names, or null when the bytes are not a script.</summary>
        public static string? Interpreter(byte[] head)
        {
            if (head.Length < 2 || head[0] != '#' || head[1] != '!')
            {
                return null;
            }
            int end = Array.IndexOf(head, (byte)'\n');
            // As the kernel's binfmt_script: only spaces and tabs are blanks, so a CRLF script names "sh\r".
            string line = Encoding.UTF8.GetString(head, 2, (end < 0 ? head.Length : end) - 2).Trim(' ', '\t');
            int space = line.AsSpan().IndexOfAny(' ', '\t');
            return space < 0 ? line : line[..space];
        }
    }
}
