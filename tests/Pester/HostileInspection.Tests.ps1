# Hostile input, round two: what an image can do to Test-Initramfs, the check Export-Initramfs
# runs, and the rootfs cmdlets.
#  - an ELF with thousands of DT_NEEDED and tens of thousands of DT_RUNPATH entries, and one whose
#    DT_NEEDED strings all point into one long string, cost seconds at most, not minutes;
#  - a self-including /etc/ld.so.conf, or a cycle through ld.so.conf.d, ends at once (each file is
#    followed once, and the include depth and total are bounded);
#  - Ctrl+C (SIGINT to a child pwsh) ends Test-Initramfs and Export-Initramfs within seconds
#    while they inspect a large rootfs with that include bomb in it;
#  - PT_INTERP, DT_RUNPATH, DT_NEEDED, ld.so.conf lines and PATH entries that climb with '..' are
#    confined to the root as inside the VM, and a library that is really missing is LibraryMissing;
#  - a directory chain 6,000 deep: extending it with Rootfs.Set, the recursive cmdlets,
#    Compare-Initramfs, Test-Initramfs and Export-Initramfs cost time linear in the entries.
# Tests that hung before the fix run in a child pwsh with a timeout, so a regression fails
# instead of hanging the suite.

BeforeAll {
    $script:ModulePath = [IO.Path]::GetFullPath(($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1"))
    Import-Module $ModulePath -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory -Temp -Prefix 'initramfsps-hostile-inspect'
    $script:oldCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    # An ELF64 little-endian shared object or PIE: one PT_LOAD over the whole file (addresses are
    # offsets), an optional PT_INTERP and a PT_DYNAMIC whose DT_NEEDED and DT_RUNPATH values are
    # offsets into -StringTable (a NUL first, as in a real .dynstr).
    function script:New-RawElf {
        param([string] $Interpreter, [long[]] $NeededOffsets = @(), [long[]] $RunPathOffsets = @(), [byte[]] $StringTable = [byte[]]@(0), [int] $Machine = 62)
        $ms = [IO.MemoryStream]::new()
        $w = [IO.BinaryWriter]::new($ms)
        $phNum = if ($Interpreter) { 3 } else { 2 }
        $interp = [byte[]]::new(0)
        if ($Interpreter) { $interp = [Text.Encoding]::UTF8.GetBytes($Interpreter + "`0") }
        $interpOff = 64 + 56 * $phNum
        $dynOff = [long]([Math]::Ceiling(($interpOff + $interp.Length) / 8) * 8)
        $dynCount = $NeededOffsets.Count + $RunPathOffsets.Count + 3
        $strOff = $dynOff + 16 * $dynCount
        $total = $strOff + $StringTable.Length
        $w.Write([byte[]](0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        $w.Write([uint16]3); $w.Write([uint16]$Machine); $w.Write([uint32]1); $w.Write([uint64]0); $w.Write([uint64]64); $w.Write([uint64]0)
        $w.Write([uint32]0); $w.Write([uint16]64); $w.Write([uint16]56); $w.Write([uint16]$phNum); $w.Write([uint16]0); $w.Write([uint16]0); $w.Write([uint16]0)
        $ph = { param($Type, $Offset, $Size) $w.Write([uint32]$Type); $w.Write([uint32]4); foreach ($v in $Offset, $Offset, $Offset, $Size, $Size, 8) { $w.Write([uint64]$v) } }
        & $ph 1 0 $total
        if ($Interpreter) { & $ph 3 $interpOff $interp.Length }
        & $ph 2 $dynOff (16 * $dynCount)
        $w.Write($interp)
        while ($ms.Position -lt $dynOff) { $w.Write([byte]0) }
        foreach ($o in $NeededOffsets) { $w.Write([uint64]1); $w.Write([uint64]$o) }
        foreach ($o in $RunPathOffsets) { $w.Write([uint64]29); $w.Write([uint64]$o) }
        $w.Write([uint64]5); $w.Write([uint64]$strOff)
        $w.Write([uint64]10); $w.Write([uint64]$StringTable.Length)
        $w.Write([uint64]0); $w.Write([uint64]0)
        $w.Write($StringTable)
        $w.Flush()
        Write-Output -NoEnumerate $ms.ToArray()
    }

    # The same with names: each string is stored once.
    function script:New-Elf {
        param([string] $Interpreter, [string[]] $Needed = @(), [string] $RunPath, [int] $Machine = 62)
        $table = [IO.MemoryStream]::new(); $table.WriteByte(0)
        $offsets = [Collections.Generic.Dictionary[string, long]]::new([StringComparer]::Ordinal)
        $add = {
            param([string] $s)
            if (-not $offsets.ContainsKey($s)) {
                $offsets[$s] = $table.Length
                $b = [Text.Encoding]::UTF8.GetBytes($s); $table.Write($b, 0, $b.Length); $table.WriteByte(0)
            }
            $offsets[$s]
        }
        $neededOffsets = [long[]]@(foreach ($n in $Needed) { & $add $n })
        $runPathOffsets = [long[]]@(if ($RunPath) { & $add $RunPath })
        New-RawElf -Interpreter $Interpreter -NeededOffsets $neededOffsets -RunPathOffsets $runPathOffsets -StringTable $table.ToArray() -Machine $Machine
    }

    # A tar written by System.Formats.Tar: microseconds an entry where New-TestTar takes
    # milliseconds, for layers of thousands of entries. Entries as New-TestTar's: Name, Type (File,
    # Dir, Symlink, Hardlink, CharDevice), Data, Mode (octal string), LinkName, DevMajor, DevMinor.
    function script:New-BulkTar([System.Collections.IEnumerable] $Entry) {
        $ms = [IO.MemoryStream]::new()
        $tw = [System.Formats.Tar.TarWriter]::new($ms, [System.Formats.Tar.TarEntryFormat]::Pax, $true)
        foreach ($e in $Entry) {
            $type = switch ($e['Type']) { 'Dir' { 'Directory' } 'Symlink' { 'SymbolicLink' } 'Hardlink' { 'HardLink' } 'CharDevice' { 'CharacterDevice' } default { 'RegularFile' } }
            $t = [System.Formats.Tar.PaxTarEntry]::new([System.Formats.Tar.TarEntryType]$type, $e['Name'])
            $mode = if ($e['Mode']) { $e['Mode'] } elseif ($type -eq 'Directory') { '0755' } else { '0644' }
            $t.Mode = [IO.UnixFileMode][Convert]::ToInt32($mode, 8)
            if ($e['LinkName']) { $t.LinkName = $e['LinkName'] }
            if ($type -eq 'CharacterDevice') { $t.DeviceMajor = $e['DevMajor']; $t.DeviceMinor = $e['DevMinor'] }
            if ($null -ne $e['Data']) {
                $bytes = if ($e['Data'] -is [string]) { [Text.Encoding]::UTF8.GetBytes($e['Data']) } else { [byte[]]$e['Data'] }
                $t.DataStream = [IO.MemoryStream]::new($bytes)
            }
            $tw.WriteEntry($t)
        }
        $tw.Dispose()
        Write-Output -NoEnumerate $ms.ToArray()
    }

    # An image of one layer (an oci: layout) and its expanded rootfs.
    function script:New-Image([byte[]] $Tar, [hashtable] $Config) {
        $layout = @{ Path = (Join-Path $work ([guid]::NewGuid().ToString('N'))); Layer = @(, $Tar); Tag = 't' }
        if ($Config) { $layout.Config = $Config }
        New-TestOciLayout @layout
    }
    function script:New-Rootfs([System.Collections.IEnumerable] $Entry, [hashtable] $Config) {
        Get-OciImage (New-Image (New-BulkTar $Entry) $Config).Reference | Expand-OciLayers
    }

    # What every rootfs here starts with: a script /init for /bin/sh, and /dev/console.
    $script:base = @(
        @{ Name = 'bin/'; Type = 'Dir' }, @{ Name = 'lib/'; Type = 'Dir' }, @{ Name = 'etc/'; Type = 'Dir' }, @{ Name = 'dev/'; Type = 'Dir' },
        @{ Name = 'dev/console'; Type = 'CharDevice'; DevMajor = 5; DevMinor = 1; Mode = '0600' },
        @{ Name = 'bin/sh'; Data = 'a shell'; Mode = '0755' }, @{ Name = 'init'; Data = "#!/bin/sh`n"; Mode = '0755' })
    $script:tinyElf = New-Elf

    # Runs -Command in a child pwsh that has the module and the test cache; a child still running
    # after -TimeoutSeconds is killed and fails the test (a hang must not hang the suite).
    function script:Invoke-Child([string] $Command, [int] $TimeoutSeconds = 60, [hashtable] $Environment = @{}) {
        $script = "Import-Module '$($ModulePath.Replace("'", "''"))'`n$Command"
        $Environment['INITRAMFSPS_CACHE'] = $env:INITRAMFSPS_CACHE
        $result = Invoke-ChildPwsh $script -WorkingDirectory $work -TimeoutSeconds $TimeoutSeconds -Environment $Environment
        $result.ExitCode | Should -Be 0 -Because $result.Output
        $result.Output
    }
}

AfterAll {
    $env:INITRAMFSPS_CACHE = $oldCache
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Library search on hostile ELF files' {
    It 'checks an ELF with 8,000 DT_NEEDED and 80,000 DT_RUNPATH entries in seconds' {
        # 1,000 distinct RUNPATH directories (500 exist, each listed 80 times); the even-numbered
        # libraries are in the last of them, the odd-numbered ones nowhere.
        $dirs = [Collections.Generic.List[string]]::new()
        for ($i = 0; $i -lt 80000; $i++) { $k = $i % 1000; $dirs.Add($(if ($k % 2) { "/nx/$k" } else { "/r/$($k / 2)" })) }
        $needed = [string[]]@(for ($i = 0; $i -lt 8000; $i++) { "libn$i.so" })
        $entries = [Collections.Generic.List[hashtable]]::new()
        $entries.AddRange([hashtable[]]$base)
        $entries.Add(@{ Name = 'r/'; Type = 'Dir' })
        for ($k = 0; $k -lt 500; $k++) { $entries.Add(@{ Name = "r/$k/"; Type = 'Dir' }) }
        $entries.Add(@{ Name = 'r/499/libn0.so'; Data = $tinyElf })
        for ($i = 2; $i -lt 8000; $i += 2) { $entries.Add(@{ Name = "r/499/libn$i.so"; Type = 'Hardlink'; LinkName = 'r/499/libn0.so' }) }
        $entries.Add(@{ Name = 'bin/app'; Data = (New-Elf -Needed $needed -RunPath ($dirs -join ':')); Mode = '0755' })
        $r = New-Rootfs $entries

        $clock = [Diagnostics.Stopwatch]::StartNew()
        $f = @($r | Test-Initramfs)
        $seconds = $clock.Elapsed.TotalSeconds
        $seconds | Should -BeLessThan 15 -Because 'the search costs the NEEDED plus the RUNPATH entries, not their product (it ran for over 10 minutes and 6 GB)'
        $f.Count | Should -Be 4000
        $f.Id | Sort-Object -Unique | Should -Be 'LibraryMissing'
        ($f.Path | Where-Object { $_ -match '^libn\d*[02468]\.so$' }) | Should -BeNullOrEmpty -Because 'the even-numbered libraries are in /r/499'
        $f[0].NeededBy | Should -Be @('/bin/app')
    }

    It 'reports an ELF whose 20,000 DT_NEEDED strings overlap in one 1 MB string as malformed, at once' {
        $table = [byte[]]::new(1MB + 2)
        [Array]::Fill[byte]($table, 0x61, 1, 1MB)
        $elf = New-RawElf -NeededOffsets ([long[]](1..20000)) -StringTable $table
        $img = New-Image (New-BulkTar ($base + @{ Name = 'bin/app'; Data = $elf; Mode = '0755' }))
        # In a child with 1 GB of heap: read to its NUL, each string is a MB, 40 GB in all.
        $out = Invoke-Child -Environment @{ DOTNET_GCHeapHardLimit = '0x40000000' } -Command @"
`$r = Get-OciImage '$($img.Reference)' | Expand-OciLayers
`$clock = [Diagnostics.Stopwatch]::StartNew()
`$f = @(`$r | Test-Initramfs)
"SECONDS=`$(`$clock.Elapsed.TotalSeconds.ToString([cultureinfo]::InvariantCulture))"
`$f | ForEach-Object { "FINDING=`$(`$_.Id) `$(`$_.Path) `$(`$_.Message)" }
"@
        [double](($out -split "`n" | Where-Object { $_ -like 'SECONDS=*' }) -replace '^SECONDS=') | Should -BeLessThan 15
        $findings = @($out -split "`n" | Where-Object { $_ -like 'FINDING=*' })
        $findings.Count | Should -Be 1
        $findings[0] | Should -Match '^FINDING=ElfMalformed /bin/app .*strings'
    }
}

Describe '/etc/ld.so.conf include bombs' {
    BeforeAll {
        $script:app = @{ Name = 'bin/app'; Data = (New-Elf -Needed 'libconf.so', 'liblast.so'); Mode = '0755' }
        # Runs Test-Initramfs in a child (it hung before the fix) and returns the finding ids and seconds.
        function script:Test-InChild([string] $Reference) {
            $out = Invoke-Child @"
`$r = Get-OciImage '$Reference' | Expand-OciLayers
`$clock = [Diagnostics.Stopwatch]::StartNew()
`$f = @(`$r | Test-Initramfs)
"SECONDS=`$(`$clock.Elapsed.TotalSeconds.ToString([cultureinfo]::InvariantCulture))"
`$f | ForEach-Object { "FINDING=`$(`$_.Severity) `$(`$_.Id) `$(`$_.Path)" }
"@ 60
            [pscustomobject]@{
                Seconds  = [double](($out -split "`n" | Where-Object { $_ -like 'SECONDS=*' }) -replace '^SECONDS=')
                Findings = @($out -split "`n" | Where-Object { $_ -like 'FINDING=*' } | ForEach-Object { ($_ -replace '^FINDING=').Trim() })
            }
        }
    }

    It 'a self-including /etc/ld.so.conf is read once' {
        $conf = ("include /etc/ld.so.conf`n" * 50) + "/opt/lib`ninclude ld.so.conf`n/opt/last`n"
        $img = New-Image (New-BulkTar ($base + $app + @(
                    @{ Name = 'etc/ld.so.conf'; Data = $conf },
                    @{ Name = 'opt/'; Type = 'Dir' }, @{ Name = 'opt/lib/'; Type = 'Dir' }, @{ Name = 'opt/lib/libconf.so'; Data = $tinyElf },
                    @{ Name = 'opt/last/'; Type = 'Dir' }, @{ Name = 'opt/last/liblast.so'; Data = $tinyElf })))
        $t = Test-InChild $img.Reference
        $t.Seconds | Should -BeLessThan 10
        $t.Findings | Should -BeNullOrEmpty -Because 'both directories of the file are searched'
    }

    It 'a cycle through ld.so.conf.d is followed once per file' {
        $entries = [Collections.Generic.List[hashtable]]::new()
        $entries.AddRange([hashtable[]]($base + $app))
        $entries.Add(@{ Name = 'etc/ld.so.conf'; Data = "include /etc/ld.so.conf.d/*.conf`n" })
        $entries.Add(@{ Name = 'etc/ld.so.conf.d/'; Type = 'Dir' })
        $entries.Add(@{ Name = 'opt/'; Type = 'Dir' })
        for ($k = 10; $k -lt 40; $k++) {
            $entries.Add(@{ Name = "etc/ld.so.conf.d/$k.conf"; Data = "include /etc/ld.so.conf`ninclude *.conf`n/opt/d$k`n" })
            $entries.Add(@{ Name = "opt/d$k/"; Type = 'Dir' })
        }
        $entries.Add(@{ Name = 'opt/d10/libconf.so'; Data = $tinyElf })
        $entries.Add(@{ Name = 'opt/d39/liblast.so'; Data = $tinyElf })
        $t = Test-InChild (New-Image (New-BulkTar $entries)).Reference
        $t.Seconds | Should -BeLessThan 10
        $t.Findings | Should -BeNullOrEmpty -Because 'every file of the cycle is read, once'
    }

    It 'a chain of includes deeper than the bound is cut, and said so' {
        $entries = [Collections.Generic.List[hashtable]]::new()
        $entries.AddRange([hashtable[]]($base + $app))
        $entries.Add(@{ Name = 'etc/ld.so.conf'; Data = "/opt/d`ninclude /etc/c/1.conf`n" })
        $entries.Add(@{ Name = 'etc/c/'; Type = 'Dir' })
        for ($k = 1; $k -le 100; $k++) { $entries.Add(@{ Name = "etc/c/$k.conf"; Data = "include /etc/c/$($k + 1).conf`n/opt/c$k`n" }) }
        $entries.Add(@{ Name = 'opt/'; Type = 'Dir' }); $entries.Add(@{ Name = 'opt/d/'; Type = 'Dir' })
        $entries.Add(@{ Name = 'opt/d/libconf.so'; Data = $tinyElf })
        $entries.Add(@{ Name = 'opt/c100/'; Type = 'Dir' }); $entries.Add(@{ Name = 'opt/c100/liblast.so'; Data = $tinyElf })
        $r = New-Rootfs $entries
        $f = @($r | Test-Initramfs)
        ($f | Where-Object Id -EQ 'LibraryMissing').Path | Should -Be 'liblast.so' -Because 'the 100th include is past the depth bound'
        $limit = @($f | Where-Object Id -EQ 'LdSoConfLimit')
        $limit.Count | Should -Be 1
        $limit[0].Severity | Should -Be 'Warning'
        $limit[0].Message | Should -Match 'deeper than'
    }
}

Describe 'Ctrl+C during an inspection' {
    BeforeAll {
        # A rootfs whose inspection takes seconds even when every bound holds: 4,000 programs in
        # /bin each need hub.so, which needs 4,000 libraries (hardlinks of one small file), so each
        # program's closure is 4,000 libraries. And the include bomb of /etc/ld.so.conf.
        $n = 4000
        $entries = [Collections.Generic.List[hashtable]]::new()
        $entries.AddRange([hashtable[]]$base)
        $entries.Add(@{ Name = 'etc/ld.so.conf'; Data = ("include /etc/ld.so.conf`n" * 50) })
        $entries.Add(@{ Name = 'lib/hub.so'; Data = (New-Elf -Needed ([string[]]@(for ($i = 0; $i -lt $n; $i++) { "l$i.so" }))) })
        $entries.Add(@{ Name = 'lib/l0.so'; Data = $tinyElf })
        for ($i = 1; $i -lt $n; $i++) { $entries.Add(@{ Name = "lib/l$i.so"; Type = 'Hardlink'; LinkName = 'lib/l0.so' }) }
        $entries.Add(@{ Name = 'bin/p0'; Data = (New-Elf -Needed 'hub.so'); Mode = '0755' })
        for ($i = 1; $i -lt $n; $i++) { $entries.Add(@{ Name = "bin/p$i"; Type = 'Hardlink'; LinkName = 'bin/p0' }) }
        $script:bomb = New-Image (New-BulkTar $entries)
        $null = Get-OciImage $bomb.Reference | Expand-OciLayers   # the layer is unpacked into the cache once
    }

    It '<Command> ends within seconds of SIGINT' -ForEach @(
        @{ Command = 'Test-Initramfs'; Line = '$null = $r | Test-Initramfs' }
        @{ Command = 'Export-Initramfs'; Line = '$null = $r | Export-Initramfs ./bomb.cpio -Force' }
    ) {
        $dir = New-TestDirectory -Parent $work -Prefix 'sigint'
        $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$($ModulePath.Replace("'", "''"))'
`$r = Get-OciImage '$($bomb.Reference)' | Expand-OciLayers
[Console]::Out.WriteLine('ready')
`$clock = [Diagnostics.Stopwatch]::StartNew()
$Line
[Console]::Out.WriteLine("finished after `$(`$clock.Elapsed.TotalSeconds) s")
"@
        $psi = [Diagnostics.ProcessStartInfo]::new([Environment]::ProcessPath)
        if ([IO.Path]::GetFileNameWithoutExtension([Environment]::ProcessPath) -eq 'dotnet') { $psi.ArgumentList.Add([Environment]::GetCommandLineArgs()[0]) }
        foreach ($a in '-NoProfile', '-NonInteractive', '-Command', $script) { $psi.ArgumentList.Add($a) }
        $psi.UseShellExecute = $false
        $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
        $psi.WorkingDirectory = $dir
        $psi.Environment['INITRAMFSPS_CACHE'] = $env:INITRAMFSPS_CACHE
        $child = [Diagnostics.Process]::Start($psi)
        try {
            $child.StandardInput.Close()
            $stderr = $child.StandardError.ReadToEndAsync()
            $ready = $child.StandardOutput.ReadLineAsync()
            $ready.Wait(120000) | Should -BeTrue -Because 'the child expands the image and starts the inspection'
            $ready.Result | Should -Be 'ready' -Because $(if ($child.HasExited) { $stderr.Result })
            Start-Sleep -Milliseconds 1500
            # (Reading the child's output here would wait for it to end.)
            $child.HasExited | Should -BeFalse -Because 'SIGINT must land in the middle of the inspection'
            $clock = [Diagnostics.Stopwatch]::StartNew()
            & kill -INT $child.Id
            $LASTEXITCODE | Should -Be 0 -Because 'the child must still be there to be interrupted'
            $exited = $child.WaitForExit(10000)
            $seconds = $clock.Elapsed.TotalSeconds
            $exited | Should -BeTrue -Because 'Ctrl+C stops the inspection'
            $seconds | Should -BeLessThan 3 -Because 'Ctrl+C ends it within a second or so (the rest is the process exiting on a busy machine)'
            $child.StandardOutput.ReadToEnd() | Should -Not -Match 'finished' -Because 'it was stopped, not completed'
            Get-ChildItem -LiteralPath $dir -Force | Should -BeNullOrEmpty -Because 'a stopped export leaves no file'
        }
        finally {
            if (-not $child.HasExited) { $child.Kill($true); $child.WaitForExit() }
            $child.Dispose()
        }
    }
}

Describe 'Paths in ELF headers and ld.so.conf that climb with ..' {
    BeforeAll {
        # Inside the VM the rootfs is the root: '..' there stays there, as the kernel and ld.so take it.
        $script:climbing = @($base + @(
                @{ Name = 'lib/ld.so'; Data = $tinyElf; Mode = '0755' },
                @{ Name = 'bin/app'; Mode = '0755'; Data = (New-Elf -Interpreter '/../lib/ld.so' -RunPath '/../../opt/lib:$ORIGIN/../../../../origin/lib' `
                            -Needed 'libopt.so', 'liborigin.so', 'libconf.so', 'libincl.so', '../srv/libpath.so') },
                @{ Name = 'opt/'; Type = 'Dir' }, @{ Name = 'opt/lib/'; Type = 'Dir' }, @{ Name = 'opt/lib/libopt.so'; Data = $tinyElf },
                @{ Name = 'origin/'; Type = 'Dir' }, @{ Name = 'origin/lib/'; Type = 'Dir' }, @{ Name = 'origin/lib/liborigin.so'; Data = $tinyElf },
                @{ Name = 'conf/'; Type = 'Dir' }, @{ Name = 'conf/lib/'; Type = 'Dir' }, @{ Name = 'conf/lib/libconf.so'; Data = $tinyElf },
                @{ Name = 'incl/'; Type = 'Dir' }, @{ Name = 'incl/lib/'; Type = 'Dir' }, @{ Name = 'incl/lib/libincl.so'; Data = $tinyElf },
                @{ Name = 'srv/'; Type = 'Dir' }, @{ Name = 'srv/libpath.so'; Data = $tinyElf },
                @{ Name = 'etc/ld.so.conf'; Data = "/../../conf/lib`ninclude ../../../etc/ld.so.conf.d/*.conf`n" },
                @{ Name = 'etc/ld.so.conf.d/'; Type = 'Dir' }, @{ Name = 'etc/ld.so.conf.d/x.conf'; Data = "/../incl/lib`n" },
                @{ Name = 'bin/musl'; Mode = '0755'; Data = (New-Elf -Interpreter '/../lib/ld-musl-x86_64.so.1' -Needed 'libmusl.so') },
                @{ Name = 'lib/ld-musl-x86_64.so.1'; Data = $tinyElf; Mode = '0755' },
                @{ Name = 'etc/ld-musl-x86_64.path'; Data = "/../musl/lib`n" },
                @{ Name = 'musl/'; Type = 'Dir' }, @{ Name = 'musl/lib/'; Type = 'Dir' }, @{ Name = 'musl/lib/libmusl.so'; Data = $tinyElf }))
        $script:gone = @{ Name = 'bin/gone'; Mode = '0755'; Data = (New-Elf -Interpreter '/../../lib/ld.so' -RunPath '/../../nowhere' -Needed 'libgone.so', '../../opt/lib/libopt.so') }
    }

    It 'Test-Initramfs finds the interpreters and libraries they name inside the rootfs' {
        @(New-Rootfs $climbing | Test-Initramfs) | Should -BeNullOrEmpty
    }

    It 'a library that is really missing is LibraryMissing, and Export-Initramfs says so' {
        $r = New-Rootfs ($climbing + $gone)
        $f = @($r | Test-Initramfs)
        $f.Id | Should -Be @('LibraryMissing')
        $f[0].Path | Should -Be 'libgone.so'
        $f[0].NeededBy | Should -Be @('/bin/gone')
        $err = $null
        $r | Export-Initramfs (Join-Path $work 'climb.cpio') -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LibraryMissing,*'
        $report = $r | Export-Initramfs (Join-Path $work 'climb.cpio') -Force -WarningAction SilentlyContinue
        $report.Warnings | Should -Match 'libgone\.so'
    }

    It 'PATH entries of the image config that climb are read inside the root' {
        $r = New-Rootfs ($base + $gone) -Config @{ Env = @('PATH=/../../usr/bin:/../bin') }
        $f = @($r | Test-Initramfs)
        ($f | Where-Object Path -EQ 'libgone.so').NeededBy | Should -Be @('/bin/gone') -Because '/../bin is /bin'
        ($f | Where-Object Id -EQ 'InterpreterMissing').Path | Should -Be '/../../lib/ld.so' -Because 'this rootfs has no /lib/ld.so'
    }
}

Describe 'A directory chain 6,000 deep' {
    It 'costs seconds at most to extend with Rootfs.Set, list, remove, compare, test and export' {
        # Each case: code run in the child (with $chain and $deepest), and the expected result.
        $cases = [ordered]@{
            'the chain built by Rootfs.Set'                                  = '$chain.Count', 6001
            'Rootfs.Set of 100 files at the bottom'                          = '$c = $chain.Clone(); for ($i = 0; $i -lt 100; $i++) { $c.Set((New-Entry "$deepest/f$i" File), $null) }; $c.Count', 6101
            'Get-InitramfsItem -Recurse'                                     = '@($chain | Get-InitramfsItem -Recurse).Count', 6000
            'Get-InitramfsItem /**'                                          = '@($chain | Get-InitramfsItem /**).Count', 6001
            'Get-InitramfsItem /d/** -Recurse'                               = '@($chain | Get-InitramfsItem /d/** -Recurse).Count', 6000
            'Remove-InitramfsItem -Recurse'                                  = '($chain | Remove-InitramfsItem /d -Recurse).Count', 1
            'Remove-InitramfsItem /d/** -Recurse'                            = '($chain | Remove-InitramfsItem /d/** -Recurse).Count', 1
            'Remove-InitramfsItem of the deepest directory'                  = '($chain | Remove-InitramfsItem $deepest).Count', 6000
            'Compare-Initramfs with an empty rootfs'                         = '@(Compare-Initramfs ([InitramfsPS.RootFilesystem.Rootfs]::new()) $chain).Count', 6000
            'Compare-Initramfs with a copy changed at the bottom'            = '$c = $chain.Clone(); $c.Set((New-Entry "$deepest/x" File), $null); @(Compare-Initramfs $chain $c).Path.Length', 12002
            'Test-Initramfs'                                                 = '@($chain | Test-Initramfs | Where-Object Id -EQ NameTooLong).Count', 3952
            'Export-Initramfs'                                               = 'try { $chain | Export-Initramfs ./deep.cpio -Force -WarningAction SilentlyContinue } catch { $_.FullyQualifiedErrorId -replace ",.*" }', 'EntryNameTooLong'
            'Rootfs.RealPath and Resolve of the deepest paths'               = '$chain.RealPath("$deepest/x").Length + $chain.Resolve($deepest + "/.." * 6000).Path.Length', 12003
            'Rootfs.Set of a file over the top of the chain, ClearDirectory' = '$c = $chain.Clone(); $c.Set((New-Entry /d File), $null); $c.Count + $chain.Clone().ClearDirectory("/d")', 6001
        }
        # In a child, with a timeout: before the fix, one of these ran for hours.
        $script = [Text.StringBuilder]::new()
        $null = $script.AppendLine(@'
function New-Entry([string] $Path, [string] $Type) { [InitramfsPS.RootFilesystem.RootfsEntry]@{ Path = $Path; Type = $Type; Mode = 0x1ED } }
# Not timed: the paths alone are 36M characters (each entry holds its whole path), so building
# the chain is quadratic in its depth whatever Set costs; before the fix it was cubic.
$chain = [InitramfsPS.RootFilesystem.Rootfs]::new()
$path = [Text.StringBuilder]::new()
for ($i = 0; $i -lt 6000; $i++) { $chain.Set([InitramfsPS.RootFilesystem.RootfsEntry]@{ Path = $path.Append('/d').ToString(); Type = 'Directory'; Mode = 0x1ED }, $null) }
$deepest = $path.ToString()
function Measure-Case([string] $Case, [string] $Code) {
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $result = Invoke-Expression $Code
    'RESULT=' + (@{ Case = $Case; Seconds = $clock.Elapsed.TotalSeconds; Result = "$result" } | ConvertTo-Json -Compress)
}
'@)
        foreach ($k in $cases.Keys) { $null = $script.AppendLine("Measure-Case '$k' '$($cases[$k][0].Replace("'", "''"))'") }
        $out = Invoke-Child $script.ToString() 300
        $results = @{}
        foreach ($line in $out -split "`n" | Where-Object { $_ -like 'RESULT=*' }) { $o = $line.Substring(7) | ConvertFrom-Json; $results[$o.Case] = $o }
        # At this depth a step quadratic in it takes 5 to 40 s here; a linear one a fraction of a second.
        $problems = foreach ($k in $cases.Keys) {
            $r = $results[$k]
            if (-not $r) { "${k}: no result"; continue }
            if ($r.Seconds -ge 5) { "${k}: $([Math]::Round($r.Seconds, 1)) s" }
            if ($r.Result -ne "$($cases[$k][1])") { "${k}: $($r.Result), expected $($cases[$k][1])" }
        }
        $timings = @(foreach ($k in $cases.Keys) { if ($results[$k]) { '{0} {1:n2} s' -f $k, $results[$k].Seconds } }) -join '; '
        $problems | Should -BeNullOrEmpty -Because "each is linear in the entries (times: $timings)"
    }
}
