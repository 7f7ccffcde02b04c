# First contact: the module's own line works as typed on a container image (no /init: one is
# generated from the image config), paths resolve through merged /usr as the kernel resolves them,
# one bad path does not stop Remove-InitramfsItem, -Recurse keeps host modes, export progress moves
# in bytes, strings from the pipeline are paths, the generated /init does not depend on where the
# image came from, and a compression that contradicts the file name is named.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory -Temp -Prefix 'initramfsps-first'
    $script:oldCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    $script:busybox = New-BusyboxLayer -Applet mkdir, sleep, hostname, id
    $script:image = New-TestOciLayout -Path (Join-Path $work 'app') -Layer @(, $busybox) -Tag app -Config @{
        Cmd = @('/bin/echo', 'workload', 'ran'); Env = @('PATH=/usr/bin:/bin', 'GREETING=hi'); WorkingDir = '/'
    }
    $script:noCommand = New-TestOciLayout -Path (Join-Path $work 'nocmd') -Layer @(, $busybox) -Tag t
    $script:agent = Join-Path $work 'agent'
    [IO.File]::WriteAllText($agent, "#!/bin/sh`necho agent`n")

    # A merged-/usr image as Debian 12, Ubuntu and Fedora ship: /bin, /lib, /sbin are links into /usr.
    $script:merged = New-TestOciLayout -Path (Join-Path $work 'merged') -Tag m -Layer @(, (New-TestTar -Entry @(
        @{ Name = 'bin'; Type = 'Symlink'; LinkName = 'usr/bin' }
        @{ Name = 'lib'; Type = 'Symlink'; LinkName = 'usr/lib' }
        @{ Name = 'sbin'; Type = 'Symlink'; LinkName = '/usr/sbin' }
        @{ Name = 'etc/'; Type = 'Dir' }
        @{ Name = 'etc/hostname'; Data = 'vm' }
        @{ Name = 'usr/'; Type = 'Dir' }
        @{ Name = 'usr/bin/'; Type = 'Dir' }
        @{ Name = 'usr/bin/bash'; Data = 'bash'; Mode = '0755' }
        @{ Name = 'usr/bin/base64'; Data = 'b64'; Mode = '0755' }
        @{ Name = 'usr/bin/cat'; Data = 'cat'; Mode = '0755' }
        @{ Name = 'usr/bin/up'; Type = 'Symlink'; LinkName = '../../../../../etc' }
        @{ Name = 'usr/bin/abs'; Type = 'Symlink'; LinkName = '/etc' }
        @{ Name = 'usr/lib/'; Type = 'Dir' }
        @{ Name = 'usr/lib/x86_64-linux-gnu/'; Type = 'Dir' }
        @{ Name = 'usr/lib/x86_64-linux-gnu/libc.so.6'; Data = 'libc' }
        @{ Name = 'usr/lib/x86_64-linux-gnu/libm.so.6'; Data = 'libm' }
        @{ Name = 'usr/sbin/'; Type = 'Dir' }
        @{ Name = 'loop/'; Type = 'Dir' }
        @{ Name = 'loop/a'; Type = 'Symlink'; LinkName = 'b' }
        @{ Name = 'loop/b'; Type = 'Symlink'; LinkName = 'a' }
    )))
    $script:mergedRootfs = Get-OciImage $merged.Reference | Expand-OciLayers
    function script:Paths { param([Parameter(ValueFromPipeline)] $Entry) process { $Entry.Path } }
}

AfterAll {
    $env:INITRAMFSPS_CACHE = $oldCache
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Export-Initramfs of a container image (no /init)' {
    It 'writes the /init Set-InitramfsInit would generate, byte for byte, says so, and reports it' {
        $warnings = $null
        $report = Get-OciImage $image.Reference | Add-InitramfsFile $agent /usr/bin/agent |
            Export-Initramfs (Join-Path $work 'auto.cpio.zst') -WarningVariable warnings -WarningAction SilentlyContinue
        $report.InitOrigin | Should -Be 'Generated'
        $report.InitCommand | Should -Be "'/bin/echo' 'workload' 'ran'"
        $report.AddedEntries | Should -Contain '/init'
        ($warnings.Message -join "`n") | Should -Match "no /init.*generated from the image config.*'/bin/echo' 'workload' 'ran'"
        $report.Warnings | Should -Match 'generated from the image config'
        $explicit = Get-OciImage $image.Reference | Add-InitramfsFile $agent /usr/bin/agent | Set-InitramfsInit |
            Export-Initramfs (Join-Path $work 'explicit.cpio.zst')
        $explicit.Sha256 | Should -Be $report.Sha256
        $explicit.InitOrigin | Should -Be 'Generated'
    }

    It 'refuses with InitMissing only when the image names no command, and -Force still writes it' {
        $err = $null
        $out = Join-Path $work 'nocmd.cpio'
        Get-OciImage $noCommand.Reference | Export-Initramfs $out -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InitMissing,*'
        $err[0].Exception.Message | Should -Match 'no image config with an Entrypoint or Cmd'
        Test-Path $out | Should -BeFalse
        $forced = Get-OciImage $noCommand.Reference | Export-Initramfs $out -Force -WarningAction SilentlyContinue
        $forced.InitOrigin | Should -Be 'None'
        (Get-CpioListing $out).Name | Should -Not -Contain 'init'
    }

    It 'refuses with the generator''s reason when the image names a command but /init cannot be generated' {
        $noShell = New-TestOciLayout -Path (Join-Path $work 'nosh') -Tag t -Config @{ Cmd = @('/app') } -Layer @(, (New-TestTar -Entry @(
            @{ Name = 'app'; Data = 'x'; Mode = '0755' })))
        $err = $null
        Get-OciImage $noShell.Reference | Export-Initramfs (Join-Path $work 'nosh.cpio') -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InitShellMissing,*'
        $err[0].Exception.Message | Should -Match "none can be generated to run '/app'"
    }

    It 'keeps an /init the image or the user gave, and says where it came from' {
        $withInit = New-TestOciLayout -Path (Join-Path $work 'withinit') -Tag t -Config @{ Cmd = @('/bin/sh') } -Layer @(, (New-BusyboxLayer -Init "#!/bin/sh`necho mine`n"))
        $fromImage = Get-OciImage $withInit.Reference | Export-Initramfs (Join-Path $work 'img-init.cpio')
        $fromImage.InitOrigin | Should -Be 'Image'
        $fromImage.InitCommand | Should -Be '/init, a script for /bin/sh'
        $fromImage.AddedEntries | Should -Not -Contain '/init'
        $byUser = Get-OciImage $image.Reference | Set-InitramfsInit -Content "#!/bin/sh`necho user`n" | Export-Initramfs (Join-Path $work 'user-init.cpio')
        $byUser.InitOrigin | Should -Be 'User'
        $script = Join-Path $work 'init.sh'
        [IO.File]::WriteAllText($script, "#!/bin/sh`necho file`n")
        (Get-OciImage $image.Reference | Set-InitramfsInit -Path $script | Export-Initramfs (Join-Path $work 'file-init.cpio')).InitOrigin | Should -Be 'User'
    }

    It 'makes Test-Initramfs report the /init Export-Initramfs would generate, and check its workload' {
        $findings = Get-OciImage $image.Reference | Test-Initramfs
        $generated = $findings | Where-Object Id -EQ 'InitGenerated'
        $generated.Severity | Should -Be 'Info'
        $generated.Message | Should -Match "'/bin/echo' 'workload' 'ran'"
        $findings | Where-Object Id -EQ 'InitMissing' | Should -BeNullOrEmpty
        $missing = New-TestOciLayout -Path (Join-Path $work 'missingprog') -Layer @(, $busybox) -Tag t -Config @{ Cmd = @('/usr/bin/nothere') }
        (Get-OciImage $missing.Reference | Test-Initramfs).Id | Should -Contain 'WorkloadMissing'
        (Get-OciImage $noCommand.Reference | Test-Initramfs | Where-Object Severity -EQ 'Error').Id | Should -Contain 'InitMissing'
    }

    It 'boots the line the module exists for, and runs the image''s command' -Tag Boot {
        $out = Join-Path $work 'boot.cpio.zst'
        $null = Get-OciImage $image.Reference | Add-InitramfsFile $agent /usr/bin/agent | Export-Initramfs $out -WarningAction SilentlyContinue
        $boot = Invoke-QemuBoot $out -TimeoutSeconds 120
        $boot.Output | Should -Match 'workload ran'
        $boot.Output | Should -Match 'workload exited with status 0'
        $boot.TimedOut | Should -BeFalse
    }
}

Describe 'The generated /init does not depend on where the image came from' -Tag Registry {
    BeforeAll {
        Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force
        $script:registry = Start-TestRegistry
        $script:pushed = Push-TestImage -Layout $image.Path -Tag app -Registry $registry.Url -Repository first/app -DestinationTag '1'
    }
    AfterAll { if ($registry) { Stop-TestRegistry $registry } }

    It 'gives the same bytes from a registry and from an OCI layout' {
        $fromRegistry = Get-OciImage $pushed.Reference
        $fromLayout = Get-OciImage $image.Reference
        $fromRegistry.Digest.ToString() | Should -Be $fromLayout.Digest.ToString()
        $a = $fromRegistry | Set-InitramfsInit | Export-Initramfs (Join-Path $work 'from-registry.cpio')
        $b = $fromLayout | Set-InitramfsInit | Export-Initramfs (Join-Path $work 'from-layout.cpio')
        $b.Sha256 | Should -Be $a.Sha256
        $c = $fromRegistry | Export-Initramfs (Join-Path $work 'auto-registry.cpio') -WarningAction SilentlyContinue
        $d = $fromLayout | Export-Initramfs (Join-Path $work 'auto-layout.cpio') -WarningAction SilentlyContinue
        $d.Sha256 | Should -Be $c.Sha256
        $text = & bsdtar -xOf (Join-Path $work 'from-layout.cpio') init | Out-String
        $text | Should -Not -Match ([regex]::Escape($work))
        $text | Should -Match ([regex]::Escape($fromLayout.ConfigDigest.ToString()))
    }
}

Describe 'Paths through merged /usr' {
    It 'finds a file through a linked parent, and gives the entry its real path' {
        ($mergedRootfs | Get-InitramfsItem /bin/bash).Path | Should -Be '/usr/bin/bash'
        ($mergedRootfs | Get-InitramfsItem /lib/x86_64-linux-gnu/libc.so.6).Path | Should -Be '/usr/lib/x86_64-linux-gnu/libc.so.6'
        ($mergedRootfs | Get-InitramfsItem /sbin/../bin/cat).Path | Should -Be '/usr/bin/cat'
    }

    It 'takes the last component as the link itself, unless the path ends in /' {
        $link = $mergedRootfs | Get-InitramfsItem /bin
        $link.Type | Should -Be 'Symlink'
        $link.Path | Should -Be '/bin'
        $mergedRootfs | Get-InitramfsItem /bin/ | Paths | Should -Be @('/usr/bin/abs', '/usr/bin/base64', '/usr/bin/bash', '/usr/bin/cat', '/usr/bin/up')
    }

    It 'keeps relative and absolute link targets inside the rootfs' {
        ($mergedRootfs | Get-InitramfsItem /usr/bin/up/hostname).Path | Should -Be '/etc/hostname'
        ($mergedRootfs | Get-InitramfsItem /bin/abs/hostname).Path | Should -Be '/etc/hostname'
        $mergedRootfs | Get-InitramfsItem /usr/bin/up/ | Paths | Should -Be @('/etc/hostname')
    }

    It 'stops a link loop with SymlinkLoop' {
        $err = $null
        $mergedRootfs | Get-InitramfsItem /loop/a/x -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'SymlinkLoop,*'
    }

    It 'follows 40 links in one path and refuses the 41st' {
        $entries = @(@{ Name = 'd/'; Type = 'Dir' }, @{ Name = 'd/target'; Data = 't' })
        foreach ($i in 1..41) { $entries += @{ Name = "l$i"; Type = 'Symlink'; LinkName = $(if ($i -eq 1) { 'd' } else { "l$($i - 1)" }) } }
        $chain = Get-OciImage (New-TestOciLayout -Path (Join-Path $work 'chain') -Tag c -Layer @(, (New-TestTar -Entry $entries))).Reference | Expand-OciLayers
        ($chain | Get-InitramfsItem /l40/target).Path | Should -Be '/d/target'
        $err = $null
        $chain | Get-InitramfsItem /l41/target -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'SymlinkLoop,*'
    }

    It 'matches patterns through linked parents' {
        $mergedRootfs | Get-InitramfsItem '/bin/ba*' | Paths | Should -Be @('/usr/bin/base64', '/usr/bin/bash')
        $mergedRootfs | Get-InitramfsItem '/lib/*/lib?.so.6' | Paths | Should -Be @('/usr/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libm.so.6')
        $mergedRootfs | Get-InitramfsItem '/*bin' | Paths | Should -Be @('/bin', '/sbin')
    }

    It 'removes through linked parents, and removes a link itself' {
        $trimmed = $mergedRootfs | Remove-InitramfsItem /bin/bash, /lib/x86_64-linux-gnu/libm.so.6
        $trimmed.GetEntry('/usr/bin/bash') | Should -BeNullOrEmpty
        $trimmed.GetEntry('/usr/lib/x86_64-linux-gnu/libm.so.6') | Should -BeNullOrEmpty
        $trimmed.GetEntry('/usr/lib/x86_64-linux-gnu/libc.so.6') | Should -Not -BeNullOrEmpty
        $unlinked = $mergedRootfs | Remove-InitramfsItem /sbin
        $unlinked.GetEntry('/sbin') | Should -BeNullOrEmpty
        $unlinked.GetEntry('/usr/sbin').Type | Should -Be 'Directory'
    }

    It 'adds a file at a path through a linked parent, and into a linked directory' {
        $a = $mergedRootfs | Add-InitramfsFile $agent /bin/agent
        $a.GetEntry('/usr/bin/agent').Type | Should -Be 'File'
        $a.GetEntry('/bin').Type | Should -Be 'Symlink'
        $b = $mergedRootfs | Add-InitramfsFile $agent /bin
        $b.GetEntry('/usr/bin/agent').Type | Should -Be 'File'
        $b.GetEntry('/bin').Type | Should -Be 'Symlink'
        $dir = New-TestDirectory -Parent $work
        $null = New-Item -ItemType Directory (Join-Path $dir 'bin')
        [IO.File]::WriteAllText((Join-Path $dir 'bin/tool'), 'tool')
        $c = $mergedRootfs | Add-InitramfsFile $dir / -Recurse
        $c.GetEntry('/usr/bin/tool').Type | Should -Be 'File'
        $c.GetEntry('/bin').Type | Should -Be 'Symlink'
    }

    It 'completes /lib/ and /bin/ba through the links' {
        $global:mergedCompletion = $mergedRootfs
        try {
            $line = '$mergedCompletion | Get-InitramfsItem /lib/'
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('/lib/x86_64-linux-gnu/')
            $line = '$mergedCompletion | Remove-InitramfsItem /bin/ba'
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('/bin/base64', '/bin/bash')
            $line = '$mergedCompletion | Get-InitramfsItem /sb'
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('/sbin/')
        }
        finally { Remove-Variable -Scope Global mergedCompletion }
    }
}

Describe 'Remove-InitramfsItem with a path that does not exist' {
    It 'writes one error for it, removes the others and passes the copy on' {
        $err = $null
        $trimmed = $mergedRootfs | Remove-InitramfsItem /usr/bin/cat, /nope, /usr/bin/bash -ErrorVariable err -ErrorAction SilentlyContinue
        @($err).Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ItemNotFound,*'
        $err[0].TargetObject | Should -Be '/nope'
        $trimmed | Should -Not -BeNullOrEmpty
        $trimmed.GetEntry('/usr/bin/cat') | Should -BeNullOrEmpty
        $trimmed.GetEntry('/usr/bin/bash') | Should -BeNullOrEmpty
    }

    It 'passes nothing on under -ErrorAction Stop' {
        $flowed = $null
        { $script:flowed = $mergedRootfs | Remove-InitramfsItem /usr/bin/cat, /nope -ErrorAction Stop } | Should -Throw -ErrorId 'ItemNotFound,*'
        $flowed | Should -BeNullOrEmpty
    }
}

Describe 'Add-InitramfsFile -Recurse' {
    It 'keeps the host''s permission bits of files and directories unless -Mode is given' {
        $dir = New-TestDirectory -Parent $work
        $null = New-Item -ItemType Directory (Join-Path $dir 'private')
        foreach ($f in 'run.sh', 'config', 'private/key') { [IO.File]::WriteAllText((Join-Path $dir $f), $f) }
        chmod 0750 (Join-Path $dir 'run.sh'); chmod 0640 (Join-Path $dir 'config'); chmod 0700 (Join-Path $dir 'private'); chmod 0600 (Join-Path $dir 'private/key')
        $r = [InitramfsPS.RootFilesystem.Rootfs]::new() | Add-InitramfsFile $dir /opt/app -Recurse
        $r.GetEntry('/opt/app/run.sh').OctalMode | Should -Be '0750'
        $r.GetEntry('/opt/app/config').OctalMode | Should -Be '0640'
        $r.GetEntry('/opt/app/private').OctalMode | Should -Be '0700'
        $r.GetEntry('/opt/app/private/key').OctalMode | Should -Be '0600'
        $m = [InitramfsPS.RootFilesystem.Rootfs]::new() | Add-InitramfsFile $dir /opt/app -Recurse -Mode 0644
        $m.GetEntry('/opt/app/run.sh').OctalMode | Should -Be '0644'
        $m.GetEntry('/opt/app/private').OctalMode | Should -Be '0755'
        ([InitramfsPS.RootFilesystem.Rootfs]::new() | Add-InitramfsFile (Join-Path $dir 'config') /etc/config).GetEntry('/etc/config').OctalMode | Should -Be '0755'
    }
}

Describe 'Export progress' {
    It 'reports bytes of cpio compressed against the total, with the seconds left, while a slow level compresses' {
        $data = Join-Path $work 'slow.bin'
        # 4 KiB random, 4 KiB zeros, over and over: about 2:1, as real files compress, so that
        # zstd takes its input in steps as it fills the output chunks.
        $rng = [Random]::new(7)
        # 24 MB: the seconds left are shown only after the first second of compressing
        # (ExportInitramfsCommand.ShowProgress), and 8 MB once took 1.08 s in all on a CI run.
        $bytes = [byte[]]::new(24MB)
        $noise = [byte[]]::new(4KB)
        for ($i = 0; $i -lt $bytes.Length; $i += 8KB) { $rng.NextBytes($noise); [Array]::Copy($noise, 0, $bytes, $i, 4KB) }
        [IO.File]::WriteAllBytes($data, $bytes)
        $r = [InitramfsPS.RootFilesystem.Rootfs]::new() | Add-InitramfsFile $data /slow.bin
        $ps = [PowerShell]::Create()
        $null = $ps.AddCommand('Import-Module').AddArgument($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1").AddStatement()
        $null = $ps.AddCommand('Export-Initramfs').AddParameter('Path', (Join-Path $work 'slow.cpio.zst')).AddParameter('InputObject', $r).
            AddParameter('CompressionLevel', 19).AddParameter('Workers', 1).AddParameter('Force').AddParameter('WarningAction', 'SilentlyContinue')
        $report = $ps.Invoke()
        $records = @($ps.Streams.Progress | Where-Object RecordType -NE 'Completed')
        $ps.Dispose()
        $total = [InitramfsPS.IO.Units]::Bytes($report[0].UncompressedSize)
        $bytesRecords = @($records | Where-Object StatusDescription -Match "of $([regex]::Escape($total)) of cpio compressed")
        $bytesRecords.Count | Should -BeGreaterThan 2 -Because ($records.StatusDescription -join "`n")
        @($bytesRecords.PercentComplete | Select-Object -Unique).Count | Should -BeGreaterThan 1
        @($bytesRecords | Where-Object SecondsRemaining -GT 0).Count | Should -BeGreaterThan 0
    }
}

Describe 'Strings and files from the pipeline are archive paths' {
    It 'checks a piped path string and a piped FileInfo as Test-Initramfs ./x.cpio.zst does' {
        $out = Join-Path $work 'piped.cpio.zst'
        $null = Get-OciImage $image.Reference | Set-InitramfsInit -Content "#!/bin/sh`nexec /bin/sh`n" | Export-Initramfs $out
        $byParameter = @(Test-Initramfs $out)
        $piped = @($out | Test-Initramfs -ErrorAction Stop)
        $piped.Count | Should -Be $byParameter.Count
        @(Get-Item $out | Test-Initramfs -ErrorAction Stop).Count | Should -Be $byParameter.Count
        $broken = Join-Path $work 'broken.cpio'
        [IO.File]::WriteAllText($broken, 'not an archive')
        $err = $null
        $broken | Test-Initramfs -ErrorVariable err -ErrorAction SilentlyContinue
        $err | Should -Not -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Not -BeLike 'InputNotRootfs,*'
        $err = $null
        (Join-Path $work 'absent.cpio') | Test-Initramfs -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ArchiveNotFound,*'
    }

    It 'imports and compares piped path strings' {
        $out = Join-Path $work 'piped.cpio.zst'
        ($out | Import-Initramfs).Count | Should -BeGreaterThan 5
        @($out | Compare-Initramfs $out).Count | Should -Be 0
    }
}

Describe 'Compression against the file name' {
    It 'warns, naming both, when -Compression contradicts the name' {
        $warnings = $null
        $null = Get-OciImage $image.Reference | Export-Initramfs (Join-Path $work 'named.cpio.gz') -Compression Zstd -WarningVariable warnings -WarningAction SilentlyContinue
        ($warnings.Message -join "`n") | Should -Match "-Compression Zstd writes zstd into 'named.cpio.gz', whose name says gzip"
        $warnings = $null
        $null = Get-OciImage $image.Reference | Export-Initramfs (Join-Path $work 'initrd.img') -Compression Zstd -WarningVariable warnings -WarningAction SilentlyContinue
        ($warnings.Message -join "`n") | Should -Not -Match 'whose name says'
        $warnings = $null
        $null = Get-OciImage $image.Reference | Export-Initramfs (Join-Path $work 'same.cpio.zst') -Compression Zstd -WarningVariable warnings -WarningAction SilentlyContinue
        ($warnings.Message -join "`n") | Should -Not -Match 'whose name says'
    }
}
