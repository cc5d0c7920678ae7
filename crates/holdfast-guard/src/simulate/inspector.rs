//! The simulation's recorder: every call frame (including internal DELEGATECALLs), every
//! contract created, every self-destruct, and the time budget.

use std::time::Instant;

use alloy::primitives::{Address, FixedBytes, U256};
use revm::Inspector;
use revm::context_interface::ContextTr;
use revm::interpreter::{
    CallInputs, CallOutcome, CallScheme, CreateInputs, CreateOutcome, InstructionResult,
    Interpreter, interpreter_types::InterpreterTypes,
};
use serde::Serialize;

/// How a frame was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    Call,
    StaticCall,
    DelegateCall,
    CallCode,
    Create,
}

/// One frame of the execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimCall {
    pub depth: u16,
    pub kind: FrameKind,
    /// `msg.sender` of the frame.
    pub from: Address,
    /// The code that ran (for DELEGATECALL and CALLCODE: the library).
    pub code: Address,
    /// The account whose storage and balance the frame used (for DELEGATECALL: the caller's).
    pub context: Address,
    pub value: U256,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<FixedBytes<4>>,
    pub success: bool,
}

/// Records frames; stops the execution once the deadline has passed (every further step
/// of every frame halts, so the whole transaction unwinds at once).
#[derive(Debug)]
pub struct Recorder {
    pub calls: Vec<SimCall>,
    pub created: Vec<Address>,
    pub selfdestructs: Vec<(Address, Address, U256)>,
    open: Vec<usize>,
    deadline: Instant,
    steps: u64,
    pub timed_out: bool,
    /// Most frames recorded (a loop of calls must not exhaust memory).
    limit: usize,
}

impl Recorder {
    pub fn new(deadline: Instant) -> Self {
        Recorder {
            calls: Vec::new(),
            created: Vec::new(),
            selfdestructs: Vec::new(),
            open: Vec::new(),
            deadline,
            steps: 0,
            timed_out: false,
            limit: 10_000,
        }
    }

    fn enter(&mut self, call: SimCall) {
        if self.calls.len() < self.limit {
            self.open.push(self.calls.len());
            self.calls.push(call);
        } else {
            self.open.push(usize::MAX);
        }
    }

    fn exit(&mut self, success: bool) {
        if let Some(i) = self.open.pop()
            && let Some(c) = self.calls.get_mut(i)
        {
            c.success = success;
        }
    }
}

impl<CTX: ContextTr, INTR: InterpreterTypes> Inspector<CTX, INTR> for Recorder {
    fn step(&mut self, interp: &mut Interpreter<INTR>, _context: &mut CTX) {
        self.steps += 1;
        if self.timed_out || (self.steps.is_multiple_of(4096) && Instant::now() >= self.deadline) {
            self.timed_out = true;
            interp.halt(InstructionResult::OutOfGas);
        }
    }

    fn call(&mut self, context: &mut CTX, inputs: &mut CallInputs) -> Option<CallOutcome> {
        let input = inputs.input.as_bytes(context);
        let selector = (input.len() >= 4).then(|| FixedBytes::<4>::from_slice(&input[..4]));
        let kind = match inputs.scheme {
            CallScheme::Call if inputs.is_static => FrameKind::StaticCall,
            CallScheme::Call => FrameKind::Call,
            CallScheme::StaticCall => FrameKind::StaticCall,
            CallScheme::DelegateCall => FrameKind::DelegateCall,
            CallScheme::CallCode => FrameKind::CallCode,
        };
        let call = SimCall {
            depth: u16::try_from(self.open.len()).unwrap_or(u16::MAX),
            kind,
            from: inputs.caller,
            code: inputs.bytecode_address,
            context: inputs.target_address,
            value: inputs.value.get(),
            selector,
            success: false,
        };
        drop(input);
        self.enter(call);
        None
    }

    fn call_end(&mut self, _context: &mut CTX, _inputs: &CallInputs, outcome: &mut CallOutcome) {
        self.exit(outcome.result.result.is_ok());
    }

    fn create(&mut self, _context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        self.enter(SimCall {
            depth: u16::try_from(self.open.len()).unwrap_or(u16::MAX),
            kind: FrameKind::Create,
            from: inputs.caller(),
            code: Address::ZERO,
            context: Address::ZERO,
            value: inputs.value(),
            selector: None,
            success: false,
        });
        None
    }

    fn create_end(
        &mut self,
        _context: &mut CTX,
        _inputs: &CreateInputs,
        outcome: &mut CreateOutcome,
    ) {
        let ok = outcome.instruction_result().is_ok();
        if let (true, Some(address)) = (ok, outcome.address) {
            if let Some(&i) = self.open.last()
                && let Some(c) = self.calls.get_mut(i)
            {
                c.code = address;
                c.context = address;
            }
            self.created.push(address);
        }
        self.exit(ok);
    }

    fn selfdestruct(&mut self, contract: Address, target: Address, value: U256) {
        self.selfdestructs.push((contract, target, value));
    }
}
