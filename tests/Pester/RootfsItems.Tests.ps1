# Get-InitramfsItem and Remove-InitramfsItem: browsing and trimming a rootfs at the prompt.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory
    $env:INITRAMFSPS_CACHE = Join-Path $work cache
    $tar = New-TestTar -Entry @(
        @{ Name = 'bin/'; Type = 'Dir' },
        @{ Name = 'bin/bash'; Data = 'b' * 300; Mode = '0755' },
        @{ Name = 'bin/busybox'; Data = 'x' * 1000; Mode = '0755' },
        @{ Name = 'bin/sh'; Type = 'Symlink'; LinkName = 'busybox' },
        @{ Name = 'dev/'; Type = 'Dir' },
        @{ Name = 'dev/null'; Type = 'CharDevice'; DevMajor = 1; DevMinor = 3 },
        @{ Name = 'usr/'; Type = 'Dir' },
        @{ Name = 'usr/share/'; Type = 'Dir' },
        @{ Name = 'usr/share/doc/'; Type = 'Dir' },
        @{ Name = 'usr/share/doc/bash/'; Type = 'Dir' },
        @{ Name = 'usr/share/doc/bash/README'; Data = 'r' * 50 },
        @{ Name = 'usr/share/man/'; Type = 'Dir' },
        @{ Name = 'usr/share/man/man1/'; Type = 'Dir' },
        @{ Name = 'usr/share/man/man1/bash.1.gz'; Data = 'm' * 20 },
        @{ Name = 'usr/share/locale/'; Type = 'Dir' },
        @{ Name = 'usr/share/locale/de/'; Type = 'Dir' },
        @{ Name = 'usr/share/locale/de/LC_MESSAGES/'; Type = 'Dir' },
        @{ Name = 'usr/share/locale/de/LC_MESSAGES/bash.mo'; Data = 'd' * 10 },
        @{ Name = 'usr/share/locale/en_GB/'; Type = 'Dir' },
        @{ Name = 'usr/share/locale/locale.alias'; Data = 'alias' },
        @{ Name = 'usr/lib/'; Type = 'Dir' },
        @{ Name = 'usr/lib/python3/'; Type = 'Dir' },
        @{ Name = 'usr/lib/python3/m.py'; Data = 'print(1)' },
        @{ Name = 'usr/lib/python3/__pycache__/'; Type = 'Dir' },
        @{ Name = 'usr/lib/python3/__pycache__/m.cpython-311.pyc'; Data = 'c' * 40 },
        @{ Name = 'var/'; Type = 'Dir' },
        @{ Name = 'var/cache/'; Type = 'Dir' },
        @{ Name = 'var/cache/apt/'; Type = 'Dir' },
        @{ Name = 'var/cache/apt/pkgcache.bin'; Data = 'p' * 70 }
    )
    $script:image = New-TestOciLayout -Path (Join-Path $work layout) -Layer @(, $tar) -Tag t
    $script:rootfs = Get-OciImage $image.Reference | Expand-OciLayers
    function script:Paths { param([Parameter(ValueFromPipeline)] $Entry) process { $Entry.Path } }
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'Get-InitramfsItem' {
    It 'lists the root without a path, and a directory''s entries with one' {
        $rootfs | Get-InitramfsItem | Paths | Should -Be @('/bin', '/dev', '/usr', '/var')
        $rootfs | Get-InitramfsItem /bin | Paths | Should -Be @('/bin/bash', '/bin/busybox', '/bin/sh')
    }

    It 'gives a file itself for a file path, and an error for a path that does not exist' {
        ($rootfs | Get-InitramfsItem /bin/sh).LinkTarget | Should -Be 'busybox'
        $err = $null
        $rootfs | Get-InitramfsItem /nope -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ItemNotFound,*'
    }

    It 'matches wildcards within a component and ** across components' {
        $rootfs | Get-InitramfsItem '/bin/b*' | Paths | Should -Be @('/bin/bash', '/bin/busybox')
        $rootfs | Get-InitramfsItem '/usr/*/doc' | Paths | Should -Be @('/usr/share/doc')
        $rootfs | Get-InitramfsItem '/**/*.pyc' | Paths | Should -Be @('/usr/lib/python3/__pycache__/m.cpython-311.pyc')
    }

    It 'lists everything below with -Recurse and filters with -Type' {
        @($rootfs | Get-InitramfsItem -Recurse).Count | Should -Be ($rootfs.Count - 1)
        $rootfs | Get-InitramfsItem /usr/share/man -Recurse | Paths | Should -Be @('/usr/share/man/man1', '/usr/share/man/man1/bash.1.gz')
        $rootfs | Get-InitramfsItem -Recurse -Type CharDevice, Symlink | Paths | Should -Be @('/bin/sh', '/dev/null')
    }

    It 'makes the largest files and per-directory sizes one-liners' {
        ($rootfs | Get-InitramfsItem -Recurse -Type File | Sort-Object Size -Descending | Select-Object -First 1).Path | Should -Be '/bin/busybox'
        $perDir = $rootfs | Get-InitramfsItem -Recurse -Type File | Group-Object Directory | Where-Object Name -EQ '/bin'
        ($perDir.Group | Measure-Object Size -Sum).Sum | Should -Be 1300
        ($rootfs | Get-InitramfsItem /bin/bash).Source | Should -Match '^layer 1 \('
    }

    It 'completes paths inside the piped rootfs' {
        # Completion looks the piped variable up as the prompt would: in the global scope.
        $global:completionRootfs = $rootfs
        $line = '$completionRootfs | Get-InitramfsItem /usr/sh'
        $result = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $result.CompletionMatches.CompletionText | Should -Be @('/usr/share/')
        $line = 'Get-InitramfsItem -InputObject $completionRootfs /bin/b'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('/bin/bash', '/bin/busybox')
        Remove-Variable -Scope Global completionRootfs
    }
}

Describe 'Remove-InitramfsItem' {
    It 'removes a file and a pattern from a copy, leaving the input as it was' {
        $trimmed = $rootfs | Remove-InitramfsItem /bin/bash, '/usr/share/locale/*/LC_MESSAGES' -Recurse
        $trimmed | Get-InitramfsItem /bin | Paths | Should -Be @('/bin/busybox', '/bin/sh')
        $trimmed.GetEntry('/usr/share/locale/de/LC_MESSAGES') | Should -BeNullOrEmpty
        $trimmed.Count | Should -Be ($rootfs.Count - 3)
        $rootfs.GetEntry('/bin/bash') | Should -Not -BeNullOrEmpty
        $trimmed.Changes[-1] | Should -Match 'removed 3 entries \(310 B\)'
    }

    It 'refuses a non-empty directory without -Recurse, and passes on the copy without removing it' {
        $err = $null
        $copy = $rootfs | Remove-InitramfsItem /usr/share/doc -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'DirectoryNotEmpty,*'
        $copy.GetEntry('/usr/share/doc/bash/README') | Should -Not -BeNullOrEmpty
        $copy.Count | Should -Be $rootfs.Count
        ($rootfs | Remove-InitramfsItem /usr/share/doc -Recurse).GetEntry('/usr/share/doc/bash/README') | Should -BeNullOrEmpty
    }

    It 'passes nothing on under -WhatIf, and says what would go' {
        $out = $rootfs | Remove-InitramfsItem -Preset Docs -WhatIf 6>&1
        $out | Where-Object { $_ -is [InitramfsPS.RootFilesystem.Rootfs] } | Should -BeNullOrEmpty
    }

    It 'reports the entries and bytes removed' {
        $info = $null
        $null = $rootfs | Remove-InitramfsItem -Preset ManPages -InformationVariable info
        "$($info[-1])" | Should -Be 'removed 3 entries (20 B) for preset ManPages'
    }

    It 'preset <Name> removes exactly <Expected>' -ForEach @(
        @{ Name = 'Docs'; Expected = @('/usr/share/doc', '/usr/share/doc/bash', '/usr/share/doc/bash/README') }
        @{ Name = 'ManPages'; Expected = @('/usr/share/man', '/usr/share/man/man1', '/usr/share/man/man1/bash.1.gz') }
        @{ Name = 'Locales'; Expected = @('/usr/share/locale/de', '/usr/share/locale/de/LC_MESSAGES', '/usr/share/locale/de/LC_MESSAGES/bash.mo') }
        @{ Name = 'PackageCaches'; Expected = @('/var/cache/apt/pkgcache.bin') }
        @{ Name = 'PythonCache'; Expected = @('/usr/lib/python3/__pycache__', '/usr/lib/python3/__pycache__/m.cpython-311.pyc') }
    ) {
        $after = $rootfs | Remove-InitramfsItem -Preset $Name
        $gone = $rootfs.GetEntries() | Paths | Where-Object { -not $after.GetEntry($_) }
        $gone | Should -Be $Expected
    }
}

Describe 'Presets and their help' {
    BeforeAll {
        # The preset lists as the help states them, parsed from the markdown the MAML is built from.
        $md = Get-Content -Raw "$PSScriptRoot/../../docs/help/Remove-InitramfsItem.md"
        $script:helpPresets = @{}
        foreach ($m in [regex]::Matches($md, '(?ms)^- (\w+): (.*?)(?=^- |\r?\n\r?\n)')) {
            $text = $m.Groups[2].Value
            $parts = $text -split ', keeping'
            $script:helpPresets[$m.Groups[1].Value] = [pscustomobject]@{
                Remove = @([regex]::Matches($parts[0], '`([^`]+)`') | ForEach-Object { $_.Groups[1].Value })
                Keep   = @(if ($parts.Count -gt 1) { [regex]::Matches($parts[1], '`([^`]+)`') | ForEach-Object { $_.Groups[1].Value } })
            }
        }
    }

    It 'the help lists exactly the patterns of preset <Name>' -ForEach @(
        @{ Name = 'Docs' }, @{ Name = 'ManPages' }, @{ Name = 'Locales' }, @{ Name = 'PackageCaches' }, @{ Name = 'PythonCache' }
    ) {
        $preset = [InitramfsPS.Initramfs]::Presets | Where-Object Name -EQ $Name
        $helpPresets[$Name].Remove | Should -Be @($preset.Remove)
        $helpPresets[$Name].Keep | Should -Be @($preset.Keep)
    }

    It 'on a Debian minbase image, each preset removes what its help says and nothing else' -Tag Debian {
        Import-Module $PSScriptRoot/DebianImage.psm1 -Force
        $debian = Get-OciImage (Get-DebianMinbaseLayout).Reference | Expand-OciLayers
        $all = @($debian.GetEntries() | Paths)
        # The tests' own reading of the help's patterns: * and ? within a component, ** across.
        function ConvertTo-TestRegex([string] $Glob) {
            $rx = ($Glob.TrimStart('/') -split '/' | ForEach-Object {
                    if ($_ -eq '**') { '(?:/[^/]+)*' } else { '/' + ([regex]::Escape($_) -replace '\\\*', '[^/]*' -replace '\\\?', '[^/]') }
                }) -join ''
            "^$rx$"
        }
        foreach ($name in $helpPresets.Keys) {
            $remove = $helpPresets[$name].Remove | ForEach-Object { ConvertTo-TestRegex $_ }
            $keep = $helpPresets[$name].Keep | ForEach-Object { ConvertTo-TestRegex $_ }
            # -cmatch: paths are case-sensitive (a case-insensitive C* would keep ca, cs and cy too).
            $tops = $all | Where-Object { $p = $_; ($remove | Where-Object { $p -cmatch $_ }) -and -not ($keep | Where-Object { $p -cmatch $_ }) }
            $expected = $all | Where-Object { $p = $_; $tops | Where-Object { $p -eq $_ -or $p.StartsWith("$_/") } }
            $after = $debian | Remove-InitramfsItem -Preset $name
            $gone = $all | Where-Object { -not $after.GetEntry($_) }
            @($gone) | Should -Be @($expected) -Because "preset $name"
            if ($name -in 'Docs', 'ManPages', 'Locales') { @($gone).Count | Should -BeGreaterThan 10 -Because "a Debian image has $name to trim" }
        }
    }
}

Describe 'Copies of a rootfs' {
    BeforeAll {
        function script:Table($r) { @($r.GetEntries() | ForEach-Object { "$($_.Path) $($_.Type) $($_.Size)" }) }
        $script:hostFile = Join-Path $work 'agent'
        Set-Content -LiteralPath $hostFile -Value 'agent'
    }

    It 'a copy and its original change independently, however deep the change' {
        $before = Table $rootfs
        $added = $rootfs | Add-InitramfsFile $hostFile /usr/share/doc/bash/agent
        $trimmed = $rootfs | Remove-InitramfsItem /usr/share/locale -Recurse
        # Two changes on the same copy: the second must not reach the first's source either.
        $both = $added | Remove-InitramfsItem /usr/share/doc/bash/README
        Table $rootfs | Should -Be $before -Because 'the piped rootfs is never changed'
        $added.GetEntry('/usr/share/doc/bash/agent') | Should -Not -BeNullOrEmpty
        $added.GetEntry('/usr/share/doc/bash/README') | Should -Not -BeNullOrEmpty -Because 'the removal was made on a copy of it'
        $added.GetEntry('/usr/share/locale/locale.alias') | Should -Not -BeNullOrEmpty
        $trimmed.GetEntry('/usr/share/locale') | Should -BeNullOrEmpty
        $trimmed.GetEntry('/usr/share/doc/bash/agent') | Should -BeNullOrEmpty
        $both.GetEntry('/usr/share/doc/bash/README') | Should -BeNullOrEmpty
        $both.GetEntry('/usr/share/doc/bash/agent') | Should -Not -BeNullOrEmpty
        $rootfs.Count | Should -Be $before.Count
        $added.Count | Should -Be ($before.Count + 1)
        $both.Count | Should -Be $before.Count
    }

    It 'a change to the original after copying does not reach the copy, nor an emptied directory' {
        $original = $rootfs.Clone()
        $copy = $original.Clone()
        $null = $original.Remove('/bin/bash')
        $null = $original.ClearDirectory('/usr/share')
        $copy.GetEntry('/bin/bash') | Should -Not -BeNullOrEmpty
        @($copy.GetChildren('/usr/share')).Count | Should -Be 3
        $original.GetEntry('/bin/bash') | Should -BeNullOrEmpty
        @($original.GetChildren('/usr/share')).Count | Should -Be 0
        Table $copy | Should -Be (Table $rootfs)
    }

    It 'costs next to nothing for 20k entries, and a change copies only the directories on its path' {
        $big = [InitramfsPS.RootFilesystem.Rootfs]::new()
        $template = [InitramfsPS.RootFilesystem.RootfsEntry]@{ Path = '/'; Type = 'Directory'; Mode = 0x1ED }
        foreach ($d in 1..20) {
            foreach ($f in 1..1000) {
                $big.Set([InitramfsPS.RootFilesystem.RootfsEntry]@{ Path = "/d$d/f$f"; Type = 'File'; Mode = 0x1A4 }, $template)
            }
        }
        $big.Count | Should -Be 20021
        $start = [GC]::GetAllocatedBytesForCurrentThread()
        $copy = $big.Clone()
        $cloned = [GC]::GetAllocatedBytesForCurrentThread() - $start
        $start = [GC]::GetAllocatedBytesForCurrentThread()
        $copy.Set([InitramfsPS.RootFilesystem.RootfsEntry]@{ Path = '/d7/new'; Type = 'File'; Mode = 0x1A4 }, $null)
        $changed = [GC]::GetAllocatedBytesForCurrentThread() - $start
        # A deep copy of 20k nodes would allocate well over 1 MB.
        $cloned | Should -BeLessThan 64KB
        $changed | Should -BeLessThan 256KB -Because 'only / (20 children) and /d7 (1000 children) are copied'
        $big.GetEntry('/d7/new') | Should -BeNullOrEmpty
        $copy.GetEntry('/d7/new') | Should -Not -BeNullOrEmpty
        $copy.Count | Should -Be 20022
        $big.Count | Should -Be 20021
    }
}
