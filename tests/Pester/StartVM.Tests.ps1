# Start-InitramfsVM: boots archives under QEMU with the Debian kernel the rig installs (TCG here, a
# few seconds per boot), and reads the console back: the workload's exit status, -Until, a panic,
# the kernel's timings; Ctrl+C, the timeout and kill -9 leave no QEMU behind. The archives are
# built once and shared, to keep the boots few.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force
    Import-Module $PSScriptRoot/DebianImage.psm1 -Force
    $script:modulePath = (Resolve-Path ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1")).Path
    $script:work = New-TestDirectory -Temp -Prefix 'initramfsps-vm'
    $script:oldCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    $busybox = New-BusyboxLayer -Applet sleep, mkdir, hostname
    function script:New-Image([string] $Name, [string[]] $Cmd) {
        (New-TestOciLayout -Path (Join-Path $work $Name) -Layer @(, $busybox) -Tag t -Config @{ Cmd = $Cmd; Env = @('PATH=/bin') }).Reference
    }
    # Prints READY, exits 3: the generated /init reports the status and powers off.
    $script:ready = Get-OciImage (New-Image ready @('/bin/sh', '-c', 'echo READY; exit 3'))
    $script:readyArchive = Join-Path $work 'ready.cpio.zst'
    $null = $ready | Export-Initramfs $readyArchive -WarningAction SilentlyContinue
    # Never ends on its own.
    $script:forever = Join-Path $work 'forever.cpio.zst'
    $null = Get-OciImage (New-Image forever @('/bin/sleep', '3600')) | Export-Initramfs $forever -WarningAction SilentlyContinue
    # An /init that returns: the kernel panics ("Attempted to kill init!").
    $script:panics = Join-Path $work 'panics.cpio.zst'
    $null = Get-OciImage (New-Image panics @('/bin/true')) | Set-InitramfsInit -Content "#!/bin/sh`necho leaving`nexit 0`n" | Export-Initramfs $panics

    $script:accelerator = if (Test-Path /dev/kvm) { try { [IO.File]::Open('/dev/kvm', 'Open', 'ReadWrite').Dispose(); 'kvm' } catch { 'tcg' } } else { 'tcg' }

    # QEMU processes whose command line names the archive.
    function script:Get-QemuFor([string] $Archive) {
        @(foreach ($dir in Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -Match '^\d+$') {
            $cmd = try { [IO.File]::ReadAllText("$($dir.FullName)/cmdline").Replace([char]0, ' ') } catch { '' }
            if ($cmd -match 'qemu-system-x86_64' -and $cmd.Contains($Archive)) { [int]$dir.Name }
        })
    }
    # What a QEMU left behind is doing: its state and parent, for the message of a failed test.
    function script:Get-QemuState([string] $Archive) {
        (Get-QemuFor $Archive | ForEach-Object {
            $stat = try { [IO.File]::ReadAllText("/proc/$_/stat") } catch { '(gone)' }
            "pid $_ stat: $stat"
        }) -join '; '
    }
    function script:Wait-Until([scriptblock] $Condition, [double] $Seconds = 60) {
        $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
        while (-not (& $Condition)) {
            if ([DateTime]::UtcNow -gt $deadline) { return $false }
            Start-Sleep -Milliseconds 50
        }
        $true
    }
}

AfterAll {
    $env:INITRAMFSPS_CACHE = $oldCache
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Describe 'Start-InitramfsVM' -Tag Boot {
    It 'boots an archive on microvm, reads the workload''s exit status and the kernel''s timings' {
        $r = Start-InitramfsVM -Path $readyArchive -Timeout 120
        $r.Outcome | Should -Be 'PoweredOff' -Because $r.Console
        $r.ExitStatus | Should -Be 3
        $r.Machine | Should -Be 'microvm'
        $r.Accelerator | Should -Be $accelerator
        $footprint = Invoke-EngineMethod InitramfsPS.Boot.ArchiveFootprint Of -Arguments @((Import-Initramfs $readyArchive), (Get-Item $readyArchive).Length)
        $r.Memory | Should -Be (Invoke-EngineMethod InitramfsPS.Boot.MemoryModel Default -Arguments @(, $footprint)) -Because 'the least memory the archive boots in, and headroom'
        $r.UnpackError | Should -BeNullOrEmpty
        $r.Console | Should -Match 'READY'
        $r.TimeToInit.TotalSeconds | Should -BeGreaterThan 0
        $r.UnpackTime.TotalSeconds | Should -BeGreaterThan 0
        $r.UnpackTime | Should -BeLessThan $r.TimeToInit
        $r.Panicked | Should -BeFalse
        $r.CommandLine | Should -Match "^qemu-system-x86_64 -M microvm -accel $accelerator -m $($r.Memory / 1MB) .*-initrd $([regex]::Escape($readyArchive))"
    }

    It 'boots a rootfs from the pipeline on q35, and removes the temporary archive' {
        $before = @(Get-ChildItem ([IO.Path]::GetTempPath()) -Filter 'initramfsps-boot-*')
        $r = $ready | Start-InitramfsVM -Machine q35 -Until '^READY' -Memory 256MB
        $r.Matched | Should -BeTrue -Because $r.Console
        $r.Outcome | Should -Be 'Matched'
        $r.Machine | Should -Be 'q35'
        $r.Memory | Should -Be 256MB
        $r.Archive | Should -BeLike '*initramfsps-boot-*.cpio.zst'
        Test-Path -LiteralPath $r.Archive | Should -BeFalse
        @(Get-ChildItem ([IO.Path]::GetTempPath()) -Filter 'initramfsps-boot-*').Count | Should -Be $before.Count
        Get-QemuFor $r.Archive | Should -BeNullOrEmpty -Because 'a match stops the VM'
    }

    It 'works as a Pester assertion on a piped image' {
        ($ready | Start-InitramfsVM -Until READY).Matched | Should -BeTrue
    }

    It 'times out, says so, and leaves no QEMU behind' {
        $r = Start-InitramfsVM $forever -Until 'never printed' -Timeout 8
        $r.TimedOut | Should -BeTrue
        $r.Matched | Should -BeFalse
        $r.Outcome | Should -Be 'TimedOut'
        $r.Duration.TotalSeconds | Should -BeLessThan 20
        Get-QemuFor $forever | Should -BeNullOrEmpty
    }

    It 'reports a panic with its line' {
        $r = Start-InitramfsVM $panics -Timeout 120
        $r.Panicked | Should -BeTrue -Because $r.Console
        $r.Outcome | Should -Be 'Panicked'
        $r.PanicLine | Should -Match 'Kernel panic - not syncing: Attempted to kill init'
    }

    It 'says the guest reset when it had too little memory to start' {
        $r = Start-InitramfsVM $readyArchive -Memory 32MB -Timeout 60
        $r.Outcome | Should -BeIn @('Reset', 'Panicked') -Because $r.Console
        $r.ExitStatus | Should -BeNullOrEmpty
    }

    It 'stops the VM on Ctrl+C' {
        $ps = [PowerShell]::Create()
        try {
            $null = $ps.AddCommand('Import-Module').AddArgument($modulePath).AddStatement()
            $null = $ps.AddCommand('Start-InitramfsVM').AddParameter('Path', $forever).AddParameter('Timeout', 300)
            $async = $ps.BeginInvoke()
            Wait-Until { (Get-QemuFor $forever).Count -gt 0 } 30 | Should -BeTrue -Because 'QEMU must have started'
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            try { $null = $ps.EndInvoke($async) } catch { }
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 10
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        }
        finally {
            # Disposing a running batch would crash this process: stop it first.
            if ($ps.InvocationStateInfo.State -eq 'Running') { $ps.Stop() }
            $ps.Dispose()
        }
        Wait-Until { (Get-QemuFor $forever).Count -eq 0 } 10 | Should -BeTrue -Because "no QEMU outlives the cmdlet ($(Get-QemuState $forever))"
    }

    It 'leaves no QEMU behind when PowerShell itself is killed' {
        # An archive of its own, so that a QEMU another test left is not taken for this one's.
        $killed = Join-Path $work 'killed.cpio.zst'
        Copy-Item $forever $killed
        $child = Start-PwshProcess -Command "Import-Module '$modulePath'; Start-InitramfsVM '$killed' -Timeout 300" -Directory $work
        try {
            Wait-Until { (Get-QemuFor $killed).Count -gt 0 } 30 | Should -BeTrue -Because (Get-Content -Raw $child.StdErrPath -ErrorAction SilentlyContinue)
        }
        finally {
            & kill -9 $child.Process.Id
            $child.Process.WaitForExit()
        }
        Wait-Until { (Get-QemuFor $killed).Count -eq 0 } 10 | Should -BeTrue -Because "the kernel kills QEMU when its parent dies (PR_SET_PDEATHSIG) ($(Get-QemuState $killed))"
    }

    It 'shows the QEMU command line under -WhatIf and -Verbose, and starts nothing under -WhatIf' {
        $out = Start-InitramfsVM $forever -WhatIf -Verbose 4>&1 6>&1
        ($out | Out-String) | Should -Match ([regex]::Escape("-initrd $forever"))
        ($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message | Should -Match '^QEMU command line: qemu-system-x86_64 '
        $out | Where-Object { $_ -is [InitramfsPS.Boot.BootResult] } | Should -BeNullOrEmpty
        Get-QemuFor $forever | Should -BeNullOrEmpty
    }

    It 'writes the console to the information stream as it runs' {
        $null = Start-InitramfsVM $readyArchive -InformationVariable console -InformationAction SilentlyContinue
        (($console | Where-Object { $_.Tags -contains 'Console' }).MessageData -join "`n") | Should -Match '(?m)^READY'
        (($console | Where-Object { $_.Tags -contains 'Console' }).MessageData -join "`n") | Should -Match '(?m)^initramfs: workload exited with status 3\s*$'
    }

    It 'refuses a kernel that is not there, and a bad -Until, with their ids' {
        $err = $null
        Start-InitramfsVM $readyArchive -Kernel (Join-Path $work 'no-vmlinuz') -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'KernelNotFound,*'
        { Start-InitramfsVM $readyArchive -Until '(' -ErrorAction Stop } | Should -Throw -ErrorId 'UntilInvalid,*'
        $err = $null
        Start-InitramfsVM (Join-Path $work 'absent.cpio') -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ArchiveNotFound,*'
    }

    It 'shows a result whole at 80 and 160 columns' {
        $r = Start-InitramfsVM $readyArchive -Until READY
        foreach ($width in 80, 160) {
            $text = $r | Out-String -Width $width
            foreach ($line in $text -split '\r?\n') { $line.Length | Should -BeLessOrEqual $width }
            # A wrapped value continues on the next line: compare without the white space.
            ($text -replace '\s', '') | Should -Match ([regex]::Escape(($r.CommandLine -replace '\s', '')))
            $text | Should -Match 'Outcome\s+: Matched'
        }
        $r.ToString() | Should -Match '^Matched: ready\.cpio\.zst on microvm/'
    }
}

Describe 'Start-InitramfsVM on Debian minbase' -Tag Boot, Debian {
    BeforeAll {
        $debian = Get-DebianMinbaseLayout -Cmd '/bin/sh', '-c', 'echo DEBIAN-READY; exit 0'
        $script:debianArchive = Join-Path $work 'debian.cpio.zst'
        $null = Get-OciImage $debian.Reference | Export-Initramfs $debianArchive -WarningAction SilentlyContinue
    }

    It 'boots it on <Machine> and reads the workload''s exit status' -ForEach @(@{ Machine = 'microvm' }, @{ Machine = 'q35' }) {
        $r = Start-InitramfsVM $debianArchive -Machine $Machine -Memory 1GB -Timeout 180
        $r.Console | Should -Match 'DEBIAN-READY'
        $r.ExitStatus | Should -Be 0 -Because $r.Console
        $r.Outcome | Should -Be 'PoweredOff'
        $r.UnpackTime.TotalSeconds | Should -BeGreaterThan 0
    }
}
